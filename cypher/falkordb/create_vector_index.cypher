// FalkorDB vector index (HNSW, options from the settings' falkordb_hnsw_*); it builds asynchronously
// (the adapter polls before querying).
CREATE VECTOR INDEX FOR (n:{{label}}) ON (n.{{prop}}) OPTIONS {dimension: {{dim}}, similarityFunction: 'cosine', M: {{m}}, efConstruction: {{ef_construction}}, efRuntime: {{ef_runtime}}}
