-- One database per service (database-per-service); each service migrates its own.
CREATE DATABASE orders;
CREATE DATABASE inventory;
CREATE DATABASE payments;
CREATE DATABASE email;
CREATE DATABASE coordinator;
