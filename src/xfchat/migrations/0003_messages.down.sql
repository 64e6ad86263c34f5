-- xfchat: destroys every message, edit, reaction, attachment and read state
DROP TABLE read_states;
DROP TABLE attachments;
DROP TABLE reactions;
DROP TABLE message_edits;
DROP TABLE messages;
