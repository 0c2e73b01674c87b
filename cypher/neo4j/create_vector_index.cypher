// Neo4j 5 vector index (cosine).
CREATE VECTOR INDEX {{index_name}} IF NOT EXISTS
FOR (n:{{label}}) ON (n.{{prop}})
OPTIONS {indexConfig: {`vector.dimensions`: {{dim}}, `vector.similarity_function`: 'cosine'}}
