-- xfchat: destroys the timeouts of members who left a server while timed out (lingering_timeouts)
DROP TABLE lingering_timeouts;
