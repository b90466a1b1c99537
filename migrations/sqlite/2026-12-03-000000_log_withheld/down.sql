DROP TABLE log_withheld;
