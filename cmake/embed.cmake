cmake_minimum_required(VERSION 3.25)
# Turn a text file into a C string constant: -DIN=file -DOUT=header.
file(READ ${IN} text)
string(REPLACE "\\" "\\\\" text "${text}")
string(REPLACE "\"" "\\\"" text "${text}")
string(REPLACE "\n" "\\n\"\n  \"" text "${text}")
file(WRITE ${OUT}.tmp "/* Generated from ${IN}: do not edit. */\nstatic const char synopsis[] =\n  \"${text}\";\n")
file(RENAME ${OUT}.tmp ${OUT})
