-- Who opened each direct conversation (db/queries/conversations.py,
-- users_at_conversation_limit): anyone may open one with a person who takes direct
-- messages from everyone, and each took one of that person's 1,000 places, with no
-- leaving one, so strangers' accounts could fill them. A direct conversation that the
-- other side opened, with someone you blocked, no longer takes one of yours; one you
-- opened still does, whomever you block. Those opened before this migration have no
-- opener recorded: either side's block frees that side's place.
ALTER TABLE channels ADD COLUMN opened_by uuid REFERENCES users (id) ON DELETE SET NULL;
