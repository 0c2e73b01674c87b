// The persona_version written on users by the last persona training (null when none).
MATCH (u:User)
WHERE u.persona_version IS NOT NULL
RETURN u.persona_version AS version
LIMIT 1
