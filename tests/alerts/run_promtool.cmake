# cmake -DRULES=<rules.yml> -DTESTS=<tests.yml> -P run_promtool.cmake
# Lints the rules (promtool check rules), then runs their unit tests (promtool test rules).
find_program(PROMTOOL promtool)
if(NOT PROMTOOL)
  message(FATAL_ERROR "alert_rules: promtool not found. Install it with: apt-get install prometheus")
endif()
foreach(step "check;rules;${RULES}" "test;rules;${TESTS}")
  execute_process(COMMAND ${PROMTOOL} ${step} RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    list(JOIN step " " shown)
    message(FATAL_ERROR "alert_rules: 'promtool ${shown}' failed (exit ${rc})")
  endif()
endforeach()
