-- xfchat: destroys every user's mutes of channels, conversations and servers (mutes)
DROP TABLE mutes;
