# cmake -DIN=<file> -DOUT=<file.cc> -DHEADER=<include path> -DNAMESPACE=<ns> -DFUNCTION=<name> -P embed_text.cmake
# Writes a C++ file whose function `std::string_view NAMESPACE::FUNCTION()` returns the bytes of IN
# (e.g. relay/ops/status_page.html), so the file stays an ordinary file in the source tree.
file(READ "${IN}" text)
set(delimiter "relay_embed")
string(FIND "${text}" ")${delimiter}\"" clash)
if(NOT clash EQUAL -1)
  message(FATAL_ERROR "embed_text: ${IN} contains the raw-string delimiter )${delimiter}\"")
endif()
get_filename_component(name "${IN}" NAME)
set(body "// Generated from ${name} by cmake/embed_text.cmake. Do not edit.\n#include \"${HEADER}\"\n\nnamespace ${NAMESPACE} {\n\nstd::string_view ${FUNCTION}() {\n  static constexpr char kText[] = R\"${delimiter}(${text})${delimiter}\";\n  return {kText, sizeof(kText) - 1};\n}\n\n}  // namespace ${NAMESPACE}\n")
file(WRITE "${OUT}.tmp" "${body}")
file(COPY_FILE "${OUT}.tmp" "${OUT}" ONLY_IF_DIFFERENT)
