-- The project's own DDL of the Apache DolphinScheduler 3.2 tables that failover touches (PostgreSQL),
-- written from the facts in shared/dolphinscheduler.md section 2 (checked against the 3.2.2 release).
-- It creates them as DolphinScheduler 3.2 has them: the same columns, types, NOT NULLs, defaults and
-- indexes, ids from t_ds_<table>_id_sequence, times as timestamp without time zone. Like
-- DolphinScheduler, it puts no index on host (DESIGN D7: failover must not need one).
-- t_ds_error_command has no sequence: a master moves a command there under the command's own id.
-- Idempotent (IF NOT EXISTS everywhere, nothing dropped). Every statement ends with a semicolon at the
-- end of its line and none appears anywhere else, so a simple splitter can run the file.

CREATE SEQUENCE IF NOT EXISTS t_ds_process_instance_id_sequence;

CREATE TABLE IF NOT EXISTS t_ds_process_instance (
  id                         int          NOT NULL DEFAULT nextval('t_ds_process_instance_id_sequence'),
  name                       varchar(255) DEFAULT NULL,
  process_definition_code    bigint       DEFAULT NULL,
  process_definition_version int          NOT NULL DEFAULT 1,
  project_code               bigint       DEFAULT NULL,
  state                      int          DEFAULT NULL,
  state_history              text,
  recovery                   int          DEFAULT NULL,
  start_time                 timestamp    DEFAULT NULL,
  end_time                   timestamp    DEFAULT NULL,
  run_times                  int          DEFAULT NULL,
  host                       varchar(135) DEFAULT NULL,
  command_type               int          DEFAULT NULL,
  command_param              text,
  task_depend_type           int          DEFAULT NULL,
  max_try_times              int          DEFAULT 0,
  failure_strategy           int          DEFAULT 0,
  warning_type               int          DEFAULT 0,
  warning_group_id           int          DEFAULT NULL,
  schedule_time              timestamp    DEFAULT NULL,
  command_start_time         timestamp    DEFAULT NULL,
  global_params              text,
  process_instance_json      text,
  flag                       int          DEFAULT 1,
  update_time                timestamp    NULL,
  is_sub_process             int          DEFAULT 0,
  executor_id                int          NOT NULL,
  executor_name              varchar(64)  DEFAULT NULL,
  history_cmd                text,
  dependence_schedule_times  text,
  process_instance_priority  int          DEFAULT 2,
  worker_group               varchar(255),
  environment_code           bigint       DEFAULT -1,
  timeout                    int          DEFAULT 0,
  tenant_code                varchar(64)  DEFAULT 'default',
  var_pool                   text,
  dry_run                    int          DEFAULT 0,
  next_process_instance_id   int          DEFAULT 0,
  restart_time               timestamp    DEFAULT NULL,
  test_flag                  int          DEFAULT NULL,
  PRIMARY KEY (id)
);

CREATE INDEX IF NOT EXISTS process_instance_index ON t_ds_process_instance (process_definition_code, id);

CREATE INDEX IF NOT EXISTS start_time_index ON t_ds_process_instance (start_time, end_time);

CREATE SEQUENCE IF NOT EXISTS t_ds_task_instance_id_sequence;

CREATE TABLE IF NOT EXISTS t_ds_task_instance (
  id                      int          NOT NULL DEFAULT nextval('t_ds_task_instance_id_sequence'),
  name                    varchar(255) DEFAULT NULL,
  task_type               varchar(50)  DEFAULT NULL,
  task_execute_type       int          DEFAULT 0,
  task_code               bigint       NOT NULL,
  task_definition_version int          NOT NULL DEFAULT 1,
  process_instance_id     int          DEFAULT NULL,
  process_instance_name   varchar(255) DEFAULT NULL,
  project_code            bigint       DEFAULT NULL,
  state                   int          DEFAULT NULL,
  submit_time             timestamp    DEFAULT NULL,
  start_time              timestamp    DEFAULT NULL,
  end_time                timestamp    DEFAULT NULL,
  host                    varchar(135) DEFAULT NULL,
  execute_path            varchar(200) DEFAULT NULL,
  log_path                text         DEFAULT NULL,
  alert_flag              int          DEFAULT NULL,
  retry_times             int          DEFAULT 0,
  pid                     int          DEFAULT NULL,
  app_link                text,
  task_params             text,
  flag                    int          DEFAULT 1,
  is_cache                int          DEFAULT 0,
  cache_key               varchar(200) DEFAULT NULL,
  retry_interval          int          DEFAULT NULL,
  max_retry_times         int          DEFAULT NULL,
  task_instance_priority  int          DEFAULT NULL,
  worker_group            varchar(255),
  environment_code        bigint       DEFAULT -1,
  environment_config      text,
  executor_id             int          DEFAULT NULL,
  executor_name           varchar(64)  DEFAULT NULL,
  first_submit_time       timestamp    DEFAULT NULL,
  delay_time              int          DEFAULT 0,
  task_group_id           int          DEFAULT NULL,
  var_pool                text,
  dry_run                 int          DEFAULT 0,
  cpu_quota               int          NOT NULL DEFAULT -1,
  memory_max              int          NOT NULL DEFAULT -1,
  test_flag               int          DEFAULT NULL,
  PRIMARY KEY (id)
);

CREATE INDEX IF NOT EXISTS idx_task_instance_code_version ON t_ds_task_instance (task_code, task_definition_version);

CREATE INDEX IF NOT EXISTS idx_cache_key ON t_ds_task_instance (cache_key);

CREATE SEQUENCE IF NOT EXISTS t_ds_command_id_sequence;

CREATE TABLE IF NOT EXISTS t_ds_command (
  id                         int          NOT NULL DEFAULT nextval('t_ds_command_id_sequence'),
  command_type               int          DEFAULT NULL,
  process_definition_code    bigint       NOT NULL,
  command_param              text,
  task_depend_type           int          DEFAULT NULL,
  failure_strategy           int          DEFAULT 0,
  warning_type               int          DEFAULT 0,
  warning_group_id           int          DEFAULT NULL,
  schedule_time              timestamp    DEFAULT NULL,
  start_time                 timestamp    DEFAULT NULL,
  executor_id                int          DEFAULT NULL,
  update_time                timestamp    DEFAULT NULL,
  process_instance_priority  int          DEFAULT 2,
  worker_group               varchar(255),
  tenant_code                varchar(64)  DEFAULT 'default',
  environment_code           bigint       DEFAULT -1,
  dry_run                    int          DEFAULT 0,
  process_instance_id        int          DEFAULT 0,
  process_definition_version int          DEFAULT 0,
  test_flag                  int          DEFAULT NULL,
  PRIMARY KEY (id)
);

CREATE INDEX IF NOT EXISTS priority_id_index ON t_ds_command (process_instance_priority, id);

CREATE TABLE IF NOT EXISTS t_ds_error_command (
  id                         int          NOT NULL,
  command_type               int          DEFAULT NULL,
  process_definition_code    bigint       NOT NULL,
  command_param              text,
  task_depend_type           int          DEFAULT NULL,
  failure_strategy           int          DEFAULT 0,
  warning_type               int          DEFAULT 0,
  warning_group_id           int          DEFAULT NULL,
  schedule_time              timestamp    DEFAULT NULL,
  start_time                 timestamp    DEFAULT NULL,
  executor_id                int          DEFAULT NULL,
  update_time                timestamp    DEFAULT NULL,
  process_instance_priority  int          DEFAULT 2,
  worker_group               varchar(255),
  tenant_code                varchar(64)  DEFAULT 'default',
  environment_code           bigint       DEFAULT -1,
  dry_run                    int          DEFAULT 0,
  message                    text,
  process_instance_id        int          DEFAULT 0,
  process_definition_version int          DEFAULT 0,
  test_flag                  int          DEFAULT NULL,
  PRIMARY KEY (id)
);

CREATE SEQUENCE IF NOT EXISTS t_ds_schedules_id_sequence;

CREATE TABLE IF NOT EXISTS t_ds_schedules (
  id                        int          NOT NULL DEFAULT nextval('t_ds_schedules_id_sequence'),
  process_definition_code   bigint       NOT NULL,
  start_time                timestamp    NOT NULL,
  end_time                  timestamp    NOT NULL,
  timezone_id               varchar(40)  DEFAULT NULL,
  crontab                   varchar(255) NOT NULL,
  failure_strategy          int          NOT NULL,
  user_id                   int          NOT NULL,
  release_state             int          NOT NULL,
  warning_type              int          NOT NULL,
  warning_group_id          int          DEFAULT NULL,
  process_instance_priority int          DEFAULT 2,
  worker_group              varchar(255),
  tenant_code               varchar(64)  DEFAULT 'default',
  environment_code          bigint       DEFAULT -1,
  create_time               timestamp    NOT NULL,
  update_time               timestamp    NOT NULL,
  PRIMARY KEY (id)
);
