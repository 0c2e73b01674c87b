// A user's neighbourhood: training history, persona group, and the recommendations written
// back by `kgrec recommend --write`. In Neo4j Browser this draws as a graph.
// Neo4j Browser:  :param user => '1'
MATCH (u:User {id: $user})
OPTIONAL MATCH (u)-[h:INTERACTED]->(item:Item)
OPTIONAL MATCH (u)-[hp:HAS_PERSONA]->(p:Persona)
OPTIONAL MATCH (u)-[r:RECOMMENDED]->(rec:Item)
RETURN u, collect(DISTINCT item) AS history, p AS persona, collect(DISTINCT rec) AS recommended
