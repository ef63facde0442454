# Sourced by the Nexmark bench scripts. `query_script FILE QUERY DDL` writes
# to FILE the tables person, auction and bid, each declared by the caller's
# function DDL (given the table's name), then sql/nexmark/QUERY.sql.
query_script() {
  local file=$1 query=$2 ddl=$3 table
  : > "$file"
  for table in person auction bid; do
    "$ddl" "$table" >> "$file"
  done
  cat "sql/nexmark/$query.sql" >> "$file"
}
