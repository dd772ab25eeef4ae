mod helpers;
mod inventory;
mod reservations;
