// People / organisations named in item metadata, for DBpedia linking (kg/dbpedia/linking.py).
MATCH (i:Item)-[:HAS_FEATURE]->(f:Feature)
WHERE f.kind IN $kinds
RETURN i.id AS item, f.kind AS kind, f.value AS value
