// A user's persona neighbourhood, drawn as a graph. What an analyst sees (with kgrec.grass): the
// user ($user, blue) with its persona group (purple), its five nearest users by persona vector
// (the vector index; cosine in the Table view) with their groups, and the items each neighbour
// shares with the user (orange), so one can check that persona neighbours are people with the
// same taste. Nearest users by persona use the vector index, so this file has a FalkorDB twin in
// cypher/falkordb/browser/.
// Neo4j Browser:  :param user => '1'
MATCH (u:User {id: $user})
CALL db.index.vector.queryNodes('kgrec_user_persona_vector', 6, u.persona) YIELD node AS n, score
WITH u, n, 2.0 * score - 1.0 AS cosine
WHERE n <> u
OPTIONAL MATCH (n)-[np:HAS_PERSONA]->(g:Persona)
OPTIONAL MATCH (u)-[ui:INTERACTED]->(shared:Item)<-[ni:INTERACTED]-(n)
WITH u, n, cosine, np, g, collect(ui)[0..5] AS mine, collect(ni)[0..5] AS theirs, collect(shared)[0..5] AS items
OPTIONAL MATCH (u)-[up:HAS_PERSONA]->(own:Persona)
RETURN u AS user, up AS membership, own AS persona, n AS neighbour, round(1000.0 * cosine) / 1000.0 AS cosine,
       np AS neighbour_membership, g AS neighbour_persona, items AS shared_items, mine, theirs
ORDER BY cosine DESC
