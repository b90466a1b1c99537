-- Nothing to restore: the deleted rows were unusable.
SELECT 1;
