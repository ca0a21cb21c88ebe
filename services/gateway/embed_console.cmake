# Turns the console page into a C++ source file: cmake -DINPUT=... -DOUTPUT=... -P embed_console.cmake
# A raw string literal keeps the page byte for byte; the delimiter must not occur in it.
file(READ "${INPUT}" page)
string(FIND "${page}" ")amparo_console\"" clash)
if(NOT clash EQUAL -1)
  message(FATAL_ERROR "${INPUT} contains the raw-string delimiter )amparo_console\"")
endif()
file(WRITE "${OUTPUT}.tmp"
  "// Generated from services/gateway/console/index.html by embed_console.cmake. Do not edit.\n"
  "#include \"services/gateway/console_html.h\"\n\n"
  "namespace amparo::gateway {\n\n"
  "std::string_view ConsoleHtml() {\n"
  "  static constexpr char kPage[] = R\"amparo_console(${page})amparo_console\";\n"
  "  return {kPage, sizeof(kPage) - 1};\n"
  "}\n\n"
  "}  // namespace amparo::gateway\n")
file(RENAME "${OUTPUT}.tmp" "${OUTPUT}")
