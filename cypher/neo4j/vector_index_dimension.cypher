// The dimension of an existing vector index (none: no row).
SHOW VECTOR INDEXES YIELD name, options
WHERE name = $index_name
RETURN options.indexConfig['vector.dimensions'] AS dim
