// DBpedia entities that connect persona groups: people, genres or publishers reached from the
// items of several personas' members. Hubs shared by many groups bridge tastes.
MATCH (p:Persona)<-[:HAS_PERSONA]-(:User)-[:INTERACTED]->(:Item)-[:SAME_AS]->(:Entity)-[r]->(x:Entity)
WITH x, type(r) AS relation, count(DISTINCT p) AS personas, count(*) AS paths
WHERE personas > 1
RETURN x.iri AS entity, x.label AS label, relation, personas, paths
ORDER BY personas DESC, paths DESC
LIMIT 25
