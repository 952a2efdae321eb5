cmake_minimum_required(VERSION 3.25)
# Build a man page from man/NAME.scd with scdoc.  The page's @SYNOPSIS@ is
# replaced by the tool's synopsis file, the same text --help prints, so the
# two cannot drift.  -DIN=page.scd -DSYN=tool.synopsis -DOUT=page -DSCDOC=...
file(READ ${IN} page)
if(EXISTS ${SYN})
  file(READ ${SYN} syn)
  string(REGEX REPLACE "\n+$" "" syn "${syn}")
  string(REPLACE "\n" "\n\t" syn "${syn}")
  string(REPLACE "@SYNOPSIS@" "```\n\t${syn}\n```" page "${page}")
endif()
string(REPLACE "@VERSION@" "${VERSION}" page "${page}")
file(WRITE ${OUT}.scd "${page}")
execute_process(COMMAND ${SCDOC} INPUT_FILE ${OUT}.scd OUTPUT_FILE ${OUT}.tmp
                RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "scdoc failed on ${IN}")
endif()
file(RENAME ${OUT}.tmp ${OUT})
