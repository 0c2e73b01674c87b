// Persona overview: every persona group with its size, readable label, and the features and
// DBpedia entities over-represented among its members. Biggest first.
MATCH (p:Persona)
RETURN p.id AS persona, p.label AS label, p.size AS size, p.top_features AS top_features,
       p.top_entities AS top_entities
ORDER BY size DESC
