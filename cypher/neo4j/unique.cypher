CREATE CONSTRAINT {{constraint_name}} IF NOT EXISTS FOR (n:{{label}}) REQUIRE n.{{key}} IS UNIQUE
