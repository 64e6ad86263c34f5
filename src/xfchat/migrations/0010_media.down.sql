-- xfchat: destroys every uploaded avatar and server icon (media)
DROP TABLE media;
