// Persona overview: every persona group with its size, readable label, and what is most
// characteristic of its members (lift × support against all users): genres and DBpedia
// subjects, people (directors, authors, cast), and items. Biggest first (ties in id order: p0, p1, ...).
MATCH (p:Persona)
RETURN p.id AS persona, p.size AS size, p.label AS label, p.top_genres AS top_genres,
       p.top_people AS top_people, p.top_items AS top_items
ORDER BY size DESC, toInteger(substring(persona, 1)) ASC
