DROP TABLE lingering_timeouts;
