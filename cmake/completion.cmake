cmake_minimum_required(VERSION 3.25)
# Build the bash completion from completion/vmferry.bash.in and the tools'
# synopses, so that it offers exactly the options --help lists.
# -DIN=template -DOUT=file -DTOOLS_DIR=dir (of the NAME.synopsis files)
#
# An option line of a synopsis starts with spaces and then either
# "-X, --name" or "--name", followed by "=ARG", "[=ARG]" or nothing.  For
# each tool the template's @VMFERRY_COMPLETION_TABLE@ gets, in the function
# _vmferry_table TOOL, the long options (those with a required value end
# in '='), the short ones, and each option's metavariable ("?" in front
# when the value is optional and so must be attached with '='); and
# @VMFERRY_TOOLS@ the tools' names.
set(table "# _vmferry_table TOOL: the options of TOOL, from tools/TOOL.synopsis.\n")
string(APPEND table "_vmferry_table ()\n{\n  case $1 in\n")
file(GLOB synopses ${TOOLS_DIR}/vmferry-*.synopsis)
set(tools "")
foreach(syn ${synopses})
  get_filename_component(tool ${syn} NAME_WE)
  string(APPEND tools " ${tool}")
  file(STRINGS ${syn} lines)
  set(long "")
  set(short "")
  set(args "")
  foreach(line IN LISTS lines)
    if(NOT line MATCHES "^ +(-([A-Za-z0-9]), +)?--([a-z][a-z0-9-]*)(\\[?=)?([A-Za-z|:=_]*)")
      continue()
    endif()
    set(s "${CMAKE_MATCH_2}")
    set(name "--${CMAKE_MATCH_3}")
    set(eq "${CMAKE_MATCH_4}")
    set(meta "${CMAKE_MATCH_5}")
    if(eq STREQUAL "=")
      string(APPEND long " ${name}=")
      string(APPEND args " '${name}:${meta}'")
      if(NOT s STREQUAL "")
        string(APPEND args " '-${s}:${meta}'")
      endif()
    elseif(eq STREQUAL "[=")
      string(APPEND long " ${name}")
      string(APPEND args " '${name}:?${meta}'")
    else()
      string(APPEND long " ${name}")
    endif()
    if(NOT s STREQUAL "")
      string(APPEND short " -${s}")
    endif()
  endforeach()
  if(long STREQUAL "")
    message(FATAL_ERROR "${syn}: no options found")
  endif()
  string(STRIP "${long}" long)
  string(STRIP "${short}" short)
  string(STRIP "${args}" args)
  string(APPEND table "  ${tool})\n"
    "    long='${long}'\n"
    "    short='${short}'\n"
    "    args=(${args})\n"
    "    ;;\n")
endforeach()
string(APPEND table "  *) return 1 ;;\n  esac\n}")

file(READ ${IN} text)
string(REPLACE "@VMFERRY_COMPLETION_TABLE@" "${table}" text "${text}")
string(STRIP "${tools}" tools)
string(REPLACE "@VMFERRY_TOOLS@" "${tools}" text "${text}")
file(WRITE ${OUT}.tmp "${text}")
file(RENAME ${OUT}.tmp ${OUT})
