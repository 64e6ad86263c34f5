-- xfchat: destroys every user's notification settings of channels, conversations and servers (notification_settings)
DROP TABLE notification_settings;
