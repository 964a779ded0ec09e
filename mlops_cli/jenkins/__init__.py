"""Jobs 1-6 (and the opt-in fan-out jobs 7-8) as data, one module per concern: `params` (what the definitions are
parameterised by), `render` (the config.xml templates of `jenkins/` filled in), `install` (update-or-create on a
server), `builds` (trigger a job, the last build of each), `wait` (what jobs 2 and 5 run after `mlops train
--detach`), `cron` (Jenkins' cron dialect) and `simulate` (the chain run here, as Jenkins would run it). Callers
import the module they need."""
