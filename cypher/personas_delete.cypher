// Remove every persona group (and its HAS_PERSONA edges) before a retrain writes new ones.
MATCH (p:Persona)
DETACH DELETE p
