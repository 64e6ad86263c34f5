-- xfchat: no data lost: a summary of reactions, counted again from them when needed.
DROP TRIGGER IF EXISTS reactions_counted_added ON reactions;
DROP TRIGGER IF EXISTS reactions_counted_gone ON reactions;
DROP FUNCTION IF EXISTS xf_reaction_counts();
DROP TABLE IF EXISTS reaction_counts;
