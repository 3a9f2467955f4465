-- `pending` used to mean "recorded" and "submit may have left" alike. Since the mark
-- `submitting` is written before a submit leaves, `pending` means it never left. Executions
-- left `pending` by an older version may have been submitted: they are reconciled.
UPDATE executions
   SET trigger_status = 'trigger_unknown',
       doc = json_set(doc, '$.trigger_status', 'trigger_unknown')
 WHERE active = 1 AND trigger_status = 'pending';
