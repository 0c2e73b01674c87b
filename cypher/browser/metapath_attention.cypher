// The semantic attention weight of each meta-path in the trained persona model: which relations
// (co-interaction UIU, shared feature UIFIU, shared DBpedia entity UIEIU, …) shape the personas.
MATCH (p:Persona)
WITH p.persona_version AS version, p.metapaths AS metapaths, p.attention AS attention
LIMIT 1
UNWIND range(0, size(metapaths) - 1) AS k
RETURN version, metapaths[k] AS metapath, round(1000.0 * attention[k]) / 1000.0 AS weight
ORDER BY weight DESC
