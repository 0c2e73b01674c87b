// Members of one persona group and how many (training) items each has.
// Neo4j Browser:  :param persona => 'p0'
MATCH (p:Persona {id: $persona})<-[:HAS_PERSONA]-(u:User)
OPTIONAL MATCH (u)-[:INTERACTED]->(i:Item)
RETURN u.id AS user, count(i) AS items
ORDER BY items DESC, user
LIMIT 100
