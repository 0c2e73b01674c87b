DROP INDEX {{index_name}} IF EXISTS
