// Neo4j 5 vector index (cosine). {{quantization}} turns quantization off on 5.23+ (where it is on
// by default and makes scores approximate); empty on older 5.x, which has no such option.
CREATE VECTOR INDEX {{index_name}} IF NOT EXISTS
FOR (n:{{label}}) ON (n.{{prop}})
OPTIONS {indexConfig: {`vector.dimensions`: {{dim}}, `vector.similarity_function`: 'cosine'{{quantization}}}}
