-- The demo's state: submissions (video uploads / generation jobs) whose status is a projection of
-- their events, guarded by a state machine.
CREATE SCHEMA IF NOT EXISTS demo;
CREATE TABLE IF NOT EXISTS demo.submissions (
  id         text PRIMARY KEY,
  title      text,
  status     text,
  progress   integer NOT NULL DEFAULT 0,
  version    integer,
  updated_at timestamptz
);
SELECT evstream.project_into('submission', 'demo.submissions');
SELECT evstream.allow_transition('submission', NULL,         'submission.created',    'created');
SELECT evstream.allow_transition('submission', 'created',    'submission.processing', 'processing');
SELECT evstream.allow_transition('submission', 'processing', 'submission.progress',   'processing');
SELECT evstream.allow_transition('submission', 'processing', 'submission.completed',  'completed');
SELECT evstream.allow_transition('submission', 'processing', 'submission.failed',     'failed');
SELECT evstream.allow_transition('submission', 'created',    'submission.failed',     'failed');
