-- GET /sagas lists newest first, a page at a time: each page is read from this index,
-- never by sorting the whole table.
CREATE INDEX sagas_newest ON sagas (created_at DESC, id DESC);
