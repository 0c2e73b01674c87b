// FalkorDB vector index; it builds asynchronously (the adapter polls before querying).
CREATE VECTOR INDEX FOR (n:{{label}}) ON (n.{{prop}}) OPTIONS {dimension: {{dim}}, similarityFunction: 'cosine'}
