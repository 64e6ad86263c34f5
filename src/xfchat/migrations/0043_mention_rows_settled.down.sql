-- Nothing to undo: the up only took out rows no live message's mentions back (the
-- triggers of 0041 would not have written them), and 0041's down drops the table.
SELECT 1;
