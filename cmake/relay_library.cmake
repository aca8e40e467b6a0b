# relay_add_library(NAME x SOURCES a.cc ... DEPS ... [PRIVATE_DEPS ...])
# creates relay_x with the alias relay::x; include paths are from the repo root.
function(relay_add_library)
  cmake_parse_arguments(ARG "" "NAME" "SOURCES;DEPS;PRIVATE_DEPS" ${ARGN})
  add_library(relay_${ARG_NAME} STATIC ${ARG_SOURCES})
  add_library(relay::${ARG_NAME} ALIAS relay_${ARG_NAME})
  target_include_directories(relay_${ARG_NAME} PUBLIC ${PROJECT_SOURCE_DIR} ${PROJECT_BINARY_DIR}/generated)
  target_link_libraries(relay_${ARG_NAME} PUBLIC ${ARG_DEPS} PRIVATE ${ARG_PRIVATE_DEPS})
endfunction()
