// The persona groups and training-item counts of a list of users (`kgrec personas neighbours`).
UNWIND $ids AS uid
MATCH (u:User {id: uid})
OPTIONAL MATCH (u)-[:HAS_PERSONA]->(p:Persona)
OPTIONAL MATCH (u)-[:INTERACTED]->(i:Item)
RETURN u.id AS user, p.id AS persona, p.label AS label, count(i) AS items
