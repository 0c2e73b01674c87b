// FalkorDB twin of cypher/browser/persona_neighbourhood.cypher (FalkorDB's vector index returns a
// cosine distance). The user with its persona group, its five nearest users by persona, their
// groups, and the items each neighbour shares with the user.
MATCH (u:User {id: $user})
CALL db.idx.vector.queryNodes('User', 'persona', 6, u.persona) YIELD node AS n, score
WITH u, n, 1.0 - score AS cosine
WHERE n <> u
OPTIONAL MATCH (n)-[np:HAS_PERSONA]->(g:Persona)
OPTIONAL MATCH (u)-[ui:INTERACTED]->(shared:Item)<-[ni:INTERACTED]-(n)
WITH u, n, cosine, np, g, collect(ui)[0..5] AS mine, collect(ni)[0..5] AS theirs, collect(shared)[0..5] AS items
OPTIONAL MATCH (u)-[up:HAS_PERSONA]->(own:Persona)
RETURN u AS user, up AS membership, own AS persona, n AS neighbour, round(1000.0 * cosine) / 1000.0 AS cosine,
       np AS neighbour_membership, g AS neighbour_persona, items AS shared_items, mine, theirs
ORDER BY cosine DESC
