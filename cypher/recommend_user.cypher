// A user's persona vector (null when none was written); no row = unknown user.
MATCH (u:User {id: $user})
RETURN u.persona AS persona, u.persona_version AS version
