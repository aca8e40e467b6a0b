# cmake -DSQL_DIR=... -DOUT=... -P embed_sql.cmake
# Writes a C++ file holding every sql/NNNN_*.sql so the relay binary carries its own migrations.
file(GLOB files "${SQL_DIR}/[0-9][0-9][0-9][0-9]_*.sql")
list(SORT files)
set(body "// Generated from sql/ by cmake/embed_sql.cmake. Do not edit.\n#include \"relay/store/migrations.h\"\n\nnamespace relay::store {\n\nconst std::vector<Migration>& embedded_migrations() {\n  static const std::vector<Migration> kMigrations = {\n")
foreach(f ${files})
  get_filename_component(name "${f}" NAME)
  string(SUBSTRING "${name}" 0 4 version)
  math(EXPR version "${version}")  # strips leading zeros
  file(READ "${f}" sql)
  string(APPEND body "      {${version}, \"${name}\", R\"relay_sql(${sql})relay_sql\"},\n")
endforeach()
string(APPEND body "  };\n  return kMigrations;\n}\n\n}  // namespace relay::store\n")
file(WRITE "${OUT}.tmp" "${body}")
file(COPY_FILE "${OUT}.tmp" "${OUT}" ONLY_IF_DIFFERENT)
