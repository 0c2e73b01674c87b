// A size class label on every persona group, by its share of all users: PersonaXL (>= 20 %),
// PersonaL (>= 10 %), PersonaM (>= 5 %), PersonaS. Neo4j Browser's style (cypher/browser/kgrec.grass)
// sizes nodes by label only, so this is what makes big groups draw big.
MATCH (q:Persona) WITH sum(q.size) AS n
MATCH (p:Persona) WHERE p.size >= 0.2 * n SET p:PersonaXL;
MATCH (q:Persona) WITH sum(q.size) AS n
MATCH (p:Persona) WHERE p.size >= 0.1 * n AND p.size < 0.2 * n SET p:PersonaL;
MATCH (q:Persona) WITH sum(q.size) AS n
MATCH (p:Persona) WHERE p.size >= 0.05 * n AND p.size < 0.1 * n SET p:PersonaM;
MATCH (q:Persona) WITH sum(q.size) AS n
MATCH (p:Persona) WHERE p.size < 0.05 * n SET p:PersonaS
