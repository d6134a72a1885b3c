//! Unit tests on outputs captured from a local Slurm 22.05 cluster (`scripts/slurm-local.sh`).

use super::*;
use crate::schedule::slurm::batch::{render_batch_script, shell_quote, BatchSpec};
use crate::schedule::slurm::job_state::*;

const RUNNING: &str = r#"JobId=9 JobName=ok UserId=root(0) GroupId=root(0) MCS_label=N/A Priority=4294901752 Nice=0 Account=(null) QOS=(null) JobState=RUNNING Reason=None Dependency=(null) Requeue=1 Restarts=0 BatchFlag=1 Reboot=0 ExitCode=0:0 RunTime=00:00:01 TimeLimit=365-00:00:00 TimeMin=N/A SubmitTime=2026-11-29T22:27:54 EligibleTime=2026-11-29T22:27:54 AccrueTime=2026-11-29T22:27:54 StartTime=2026-11-29T22:27:54 EndTime=2027-11-29T22:27:54 Deadline=N/A SuspendTime=None SecsPreSuspend=0 LastSchedEval=2026-11-29T22:27:54 Scheduler=Backfill Partition=debug AllocNode:Sid=localhost:9133 ReqNodeList=(null) ExcNodeList=(null) NodeList=vm BatchHost=vm NumNodes=1 NumCPUs=1 NumTasks=1 CPUs/Task=1 ReqB:S:C:T=0:0:*:* TRES=cpu=1,mem=12052M,node=1,billing=1 Socks/Node=* NtasksPerN:B:S:C=0:0:*:* CoreSpec=* MinCPUsNode=1 MinMemoryCPU=12052M MinTmpDiskNode=0 Features=(null) DelayBoot=00:00:00 OverSubscribe=OK Contiguous=0 Licenses=(null) Network=(null) Command=/work/scratch/slurm/exp/job.sh WorkDir=/work/scratch/slurm/exp StdErr=/work/scratch/slurm/exp/out/9.out StdIn=/dev/null StdOut=/work/scratch/slurm/exp/out/9.out Power= "#;
const PENDING_RESOURCES: &str = r#"JobId=11 JobName=pend UserId=root(0) GroupId=root(0) MCS_label=N/A Priority=4294901750 Nice=0 Account=(null) QOS=(null) JobState=PENDING Reason=Resources Dependency=(null) Requeue=1 Restarts=0 BatchFlag=1 Reboot=0 ExitCode=0:0 RunTime=00:00:00 TimeLimit=UNLIMITED TimeMin=N/A SubmitTime=2026-11-29T22:27:54 EligibleTime=2026-11-29T22:27:54 AccrueTime=2026-11-29T22:27:54 StartTime=2027-11-29T22:27:54 EndTime=Unknown Deadline=N/A SuspendTime=None SecsPreSuspend=0 LastSchedEval=2026-11-29T22:27:54 Scheduler=Main Partition=debug AllocNode:Sid=localhost:9133 ReqNodeList=(null) ExcNodeList=(null) NodeList= NumNodes=1 NumCPUs=1 NumTasks=1 CPUs/Task=1 ReqB:S:C:T=0:0:*:* TRES=cpu=1,mem=12052M,node=1,billing=1 Socks/Node=* NtasksPerN:B:S:C=0:0:*:* CoreSpec=* MinCPUsNode=1 MinMemoryCPU=12052M MinTmpDiskNode=0 Features=(null) DelayBoot=00:00:00 OverSubscribe=OK Contiguous=0 Licenses=(null) Network=(null) Command=/work/scratch/slurm/exp/job.sh WorkDir=/work/scratch/slurm/exp StdErr=/work/scratch/slurm/exp/out/11.out StdIn=/dev/null StdOut=/work/scratch/slurm/exp/out/11.out Power= "#;
const COMPLETED: &str = r#"JobId=9 JobName=ok UserId=root(0) GroupId=root(0) MCS_label=N/A Priority=4294901752 Nice=0 Account=(null) QOS=(null) JobState=COMPLETED Reason=None Dependency=(null) Requeue=1 Restarts=0 BatchFlag=1 Reboot=0 ExitCode=0:0 RunTime=00:00:03 TimeLimit=365-00:00:00 TimeMin=N/A SubmitTime=2026-11-29T22:27:54 EligibleTime=2026-11-29T22:27:54 AccrueTime=2026-11-29T22:27:54 StartTime=2026-11-29T22:27:54 EndTime=2026-11-29T22:27:57 Deadline=N/A SuspendTime=None SecsPreSuspend=0 LastSchedEval=2026-11-29T22:27:54 Scheduler=Backfill Partition=debug AllocNode:Sid=localhost:9133 ReqNodeList=(null) ExcNodeList=(null) NodeList=vm BatchHost=vm NumNodes=1 NumCPUs=1 NumTasks=1 CPUs/Task=1 ReqB:S:C:T=0:0:*:* TRES=cpu=1,mem=12052M,node=1,billing=1 Socks/Node=* NtasksPerN:B:S:C=0:0:*:* CoreSpec=* MinCPUsNode=1 MinMemoryCPU=12052M MinTmpDiskNode=0 Features=(null) DelayBoot=00:00:00 OverSubscribe=OK Contiguous=0 Licenses=(null) Network=(null) Command=/work/scratch/slurm/exp/job.sh WorkDir=/work/scratch/slurm/exp StdErr=/work/scratch/slurm/exp/out/9.out StdIn=/dev/null StdOut=/work/scratch/slurm/exp/out/9.out Power= "#;
const FAILED_EXIT_1: &str = r#"JobId=10 JobName=fail UserId=root(0) GroupId=root(0) MCS_label=N/A Priority=4294901751 Nice=0 Account=(null) QOS=(null) JobState=FAILED Reason=NonZeroExitCode Dependency=(null) Requeue=1 Restarts=0 BatchFlag=1 Reboot=0 ExitCode=1:0 RunTime=00:00:03 TimeLimit=365-00:00:00 TimeMin=N/A SubmitTime=2026-11-29T22:27:54 EligibleTime=2026-11-29T22:27:54 AccrueTime=2026-11-29T22:27:54 StartTime=2026-11-29T22:27:54 EndTime=2026-11-29T22:27:57 Deadline=N/A SuspendTime=None SecsPreSuspend=0 LastSchedEval=2026-11-29T22:27:54 Scheduler=Backfill Partition=debug AllocNode:Sid=localhost:9133 ReqNodeList=(null) ExcNodeList=(null) NodeList=vm BatchHost=vm NumNodes=1 NumCPUs=1 NumTasks=1 CPUs/Task=1 ReqB:S:C:T=0:0:*:* TRES=cpu=1,mem=12052M,node=1,billing=1 Socks/Node=* NtasksPerN:B:S:C=0:0:*:* CoreSpec=* MinCPUsNode=1 MinMemoryCPU=12052M MinTmpDiskNode=0 Features=(null) DelayBoot=00:00:00 OverSubscribe=OK Contiguous=0 Licenses=(null) Network=(null) Command=/work/scratch/slurm/exp/job.sh WorkDir=/work/scratch/slurm/exp StdErr=/work/scratch/slurm/exp/out/10.out StdIn=/dev/null StdOut=/work/scratch/slurm/exp/out/10.out Power= "#;
const CANCELLED_RUNNING: &str = r#"JobId=12 JobName=cancel UserId=root(0) GroupId=root(0) MCS_label=N/A Priority=4294901749 Nice=0 Account=(null) QOS=(null) JobState=CANCELLED Reason=None Dependency=(null) Requeue=1 Restarts=0 BatchFlag=1 Reboot=0 ExitCode=143:0 RunTime=00:00:02 TimeLimit=365-00:00:00 TimeMin=N/A SubmitTime=2026-11-29T22:27:58 EligibleTime=2026-11-29T22:27:58 AccrueTime=2026-11-29T22:27:58 StartTime=2026-11-29T22:27:58 EndTime=2026-11-29T22:28:00 Deadline=N/A SuspendTime=None SecsPreSuspend=0 LastSchedEval=2026-11-29T22:27:58 Scheduler=Backfill Partition=debug AllocNode:Sid=localhost:9133 ReqNodeList=(null) ExcNodeList=(null) NodeList=vm BatchHost=vm NumNodes=1 NumCPUs=1 NumTasks=1 CPUs/Task=1 ReqB:S:C:T=0:0:*:* TRES=cpu=1,mem=12052M,node=1,billing=1 Socks/Node=* NtasksPerN:B:S:C=0:0:*:* CoreSpec=* MinCPUsNode=1 MinMemoryCPU=12052M MinTmpDiskNode=0 Features=(null) DelayBoot=00:00:00 OverSubscribe=OK Contiguous=0 Licenses=(null) Network=(null) Command=/work/scratch/slurm/exp/job.sh WorkDir=/work/scratch/slurm/exp StdErr=/work/scratch/slurm/exp/out/12.out StdIn=/dev/null StdOut=/work/scratch/slurm/exp/out/12.out Power= "#;
const CANCELLED_PENDING: &str = r#"JobId=13 JobName=cpend UserId=root(0) GroupId=root(0) MCS_label=N/A Priority=0 Nice=0 Account=(null) QOS=(null) JobState=CANCELLED Reason=JobHeldUser Dependency=(null) Requeue=1 Restarts=0 BatchFlag=1 Reboot=0 ExitCode=0:0 RunTime=00:00:00 TimeLimit=UNLIMITED TimeMin=N/A SubmitTime=2026-11-29T22:28:03 EligibleTime=Unknown AccrueTime=Unknown StartTime=2026-11-29T22:28:04 EndTime=2026-11-29T22:28:04 Deadline=N/A SuspendTime=None SecsPreSuspend=0 LastSchedEval=2026-11-29T22:28:03 Scheduler=Main Partition=debug AllocNode:Sid=localhost:9133 ReqNodeList=(null) ExcNodeList=(null) NodeList= NumNodes=1 NumCPUs=1 NumTasks=N/A CPUs/Task=1 ReqB:S:C:T=0:0:*:* TRES=cpu=1,mem=12052M,node=1,billing=1 Socks/Node=* NtasksPerN:B:S:C=0:0:*:* CoreSpec=* MinCPUsNode=1 MinMemoryCPU=12052M MinTmpDiskNode=0 Features=(null) DelayBoot=00:00:00 OverSubscribe=OK Contiguous=0 Licenses=(null) Network=(null) Command=/work/scratch/slurm/exp/job.sh WorkDir=/work/scratch/slurm/exp StdErr=/work/scratch/slurm/exp/out/13.out StdIn=/dev/null StdOut=/work/scratch/slurm/exp/out/13.out Power= "#;
const TIMEOUT: &str = r#"JobId=14 JobName=timeout UserId=root(0) GroupId=root(0) MCS_label=N/A Priority=4294901748 Nice=0 Account=(null) QOS=(null) JobState=TIMEOUT Reason=TimeLimit Dependency=(null) Requeue=1 Restarts=0 BatchFlag=1 Reboot=0 ExitCode=143:0 RunTime=00:01:28 TimeLimit=00:01:00 TimeMin=N/A SubmitTime=2026-11-29T22:28:04 EligibleTime=2026-11-29T22:28:04 AccrueTime=2026-11-29T22:28:04 StartTime=2026-11-29T22:28:04 EndTime=2026-11-29T22:29:32 Deadline=N/A SuspendTime=None SecsPreSuspend=0 LastSchedEval=2026-11-29T22:28:04 Scheduler=Backfill Partition=debug AllocNode:Sid=localhost:9133 ReqNodeList=(null) ExcNodeList=(null) NodeList=vm BatchHost=vm NumNodes=1 NumCPUs=1 NumTasks=1 CPUs/Task=1 ReqB:S:C:T=0:0:*:* TRES=cpu=1,mem=12052M,node=1,billing=1 Socks/Node=* NtasksPerN:B:S:C=0:0:*:* CoreSpec=* MinCPUsNode=1 MinMemoryCPU=12052M MinTmpDiskNode=0 Features=(null) DelayBoot=00:00:00 OverSubscribe=OK Contiguous=0 Licenses=(null) Network=(null) Command=/work/scratch/slurm/exp/job.sh WorkDir=/work/scratch/slurm/exp StdErr=/work/scratch/slurm/exp/out/14.out StdIn=/dev/null StdOut=/work/scratch/slurm/exp/out/14.out Power= "#;
const KILLED_9: &str = r#"JobId=35 JobName=kill9-late UserId=root(0) GroupId=root(0) MCS_label=N/A Priority=4294901727 Nice=0 Account=(null) QOS=(null) JobState=FAILED Reason=JobLaunchFailure Dependency=(null) Requeue=1 Restarts=0 BatchFlag=1 Reboot=0 ExitCode=0:9 RunTime=00:00:05 TimeLimit=365-00:00:00 TimeMin=N/A SubmitTime=2026-11-29T22:32:21 EligibleTime=2026-11-29T22:32:21 AccrueTime=2026-11-29T22:32:21 StartTime=2026-11-29T22:32:21 EndTime=2026-11-29T22:32:26 Deadline=N/A SuspendTime=None SecsPreSuspend=0 LastSchedEval=2026-11-29T22:32:21 Scheduler=Backfill Partition=debug AllocNode:Sid=localhost:9133 ReqNodeList=(null) ExcNodeList=(null) NodeList=vm BatchHost=vm NumNodes=1 NumCPUs=1 NumTasks=1 CPUs/Task=1 ReqB:S:C:T=0:0:*:* TRES=cpu=1,mem=3013M,node=1,billing=1 Socks/Node=* NtasksPerN:B:S:C=0:0:*:* CoreSpec=* MinCPUsNode=1 MinMemoryCPU=3013M MinTmpDiskNode=0 Features=(null) DelayBoot=00:00:00 OverSubscribe=OK Contiguous=0 Licenses=(null) Network=(null) Command=/work/scratch/slurm/exp/job.sh WorkDir=/work/scratch/slurm/exp StdErr=/work/scratch/slurm/exp/out/rq-35.out StdIn=/dev/null StdOut=/work/scratch/slurm/exp/out/rq-35.out Power= "#;
const REJECTED_MEM: &str = r#"JobId=3 JobName=job.sh UserId=root(0) GroupId=root(0) MCS_label=N/A Priority=4294901757 Nice=0 Account=(null) QOS=(null) JobState=FAILED Reason=BadConstraints Dependency=(null) Requeue=1 Restarts=0 BatchFlag=1 Reboot=0 ExitCode=0:1 RunTime=00:00:00 TimeLimit=UNLIMITED TimeMin=N/A SubmitTime=2026-11-29T22:26:20 EligibleTime=2026-11-29T22:26:20 AccrueTime=Unknown StartTime=2026-11-29T22:26:20 EndTime=2026-11-29T22:26:20 Deadline=N/A SuspendTime=None SecsPreSuspend=0 LastSchedEval=2026-11-29T22:26:20 Scheduler=Main Partition=debug AllocNode:Sid=localhost:9133 ReqNodeList=(null) ExcNodeList=(null) NodeList= NumNodes=1 NumCPUs=1 NumTasks=N/A CPUs/Task=1 ReqB:S:C:T=0:0:*:* TRES=cpu=1,mem=100G,node=1,billing=1 Socks/Node=* NtasksPerN:B:S:C=0:0:*:* CoreSpec=* MinCPUsNode=1 MinMemoryNode=100G MinTmpDiskNode=0 Features=(null) DelayBoot=00:00:00 OverSubscribe=OK Contiguous=0 Licenses=(null) Network=(null) Command=/work/scratch/slurm/exp/job.sh WorkDir=/work/scratch/slurm/exp StdErr=/work/scratch/slurm/exp/out/3.out StdIn=/dev/null StdOut=/work/scratch/slurm/exp/out/3.out Power= "#;
const PENDING_PARTITION_CONFIG: &str = r#"JobId=4 JobName=job.sh UserId=root(0) GroupId=root(0) MCS_label=N/A Priority=4294901756 Nice=0 Account=(null) QOS=(null) JobState=PENDING Reason=PartitionConfig Dependency=(null) Requeue=1 Restarts=0 BatchFlag=1 Reboot=0 ExitCode=0:0 RunTime=00:00:00 TimeLimit=UNLIMITED TimeMin=N/A SubmitTime=2026-11-29T22:26:20 EligibleTime=2026-11-29T22:26:20 AccrueTime=2026-11-29T22:26:20 StartTime=Unknown EndTime=Unknown Deadline=N/A SuspendTime=None SecsPreSuspend=0 LastSchedEval=2026-11-29T22:26:20 Scheduler=Main Partition=debug AllocNode:Sid=localhost:9133 ReqNodeList=(null) ExcNodeList=(null) NodeList= NumNodes=1 NumCPUs=3 NumTasks=1 CPUs/Task=3 ReqB:S:C:T=0:0:*:* TRES=cpu=3,mem=36156M,node=1,billing=3 Socks/Node=* NtasksPerN:B:S:C=0:0:*:* CoreSpec=* MinCPUsNode=3 MinMemoryCPU=12052M MinTmpDiskNode=0 Features=(null) DelayBoot=00:00:00 OverSubscribe=OK Contiguous=0 Licenses=(null) Network=(null) Command=/work/scratch/slurm/exp/job.sh WorkDir=/work/scratch/slurm/exp StdErr=/work/scratch/slurm/exp/out/4.out StdIn=/dev/null StdOut=/work/scratch/slurm/exp/out/4.out Power= "#;
const COMPLETING_REQUEUE: &str = r#"JobId=308 JobName=pixelx-run-abc UserId=root(0) GroupId=root(0) MCS_label=N/A Priority=4294901693 Nice=0 Account=(null) QOS=(null) JobState=COMPLETING Reason=None Dependency=(null) Requeue=1 Restarts=1 BatchFlag=1 Reboot=0 ExitCode=0:0 RunTime=00:00:00 TimeLimit=UNLIMITED TimeMin=N/A SubmitTime=2026-11-29T22:38:30 EligibleTime=2026-11-29T22:38:30 AccrueTime=2026-11-29T22:38:30 StartTime=2026-11-29T22:38:31 EndTime=Unknown Deadline=N/A SuspendTime=None SecsPreSuspend=0 LastSchedEval=2026-11-29T22:38:30 Scheduler=Main Partition=debug AllocNode:Sid=localhost:9133 ReqNodeList=(null) ExcNodeList=(null) NodeList=vm BatchHost=vm NumNodes=1 NumCPUs=1 NumTasks=1 CPUs/Task=1 ReqB:S:C:T=0:0:*:* TRES=cpu=1,mem=3013M,node=1,billing=1 Socks/Node=* NtasksPerN:B:S:C=0:0:*:* CoreSpec=* MinCPUsNode=1 MinMemoryCPU=3013M MinTmpDiskNode=0 Features=(null) DelayBoot=00:00:00 OverSubscribe=OK Contiguous=0 Licenses=(null) Network=(null) Command=/work/scratch/slurm/exp/job.sh WorkDir=/work/scratch/slurm/exp StdErr=/dev/null StdIn=/dev/null StdOut=/dev/null Power= "#;
const REQUEUED_BEGIN_TIME: &str = r#"JobId=308 JobName=pixelx-run-abc UserId=root(0) GroupId=root(0) MCS_label=N/A Priority=4294901693 Nice=0 Account=(null) QOS=(null) JobState=PENDING Reason=BeginTime Dependency=(null) Requeue=1 Restarts=1 BatchFlag=1 Reboot=0 ExitCode=0:0 RunTime=00:00:00 TimeLimit=UNLIMITED TimeMin=N/A SubmitTime=2026-11-29T22:38:40 EligibleTime=2026-11-29T22:38:46 AccrueTime=2026-11-29T22:38:46 StartTime=2026-11-29T22:38:46 EndTime=Unknown Deadline=N/A SuspendTime=None SecsPreSuspend=0 LastSchedEval=2026-11-29T22:38:30 Scheduler=Main Partition=debug AllocNode:Sid=localhost:9133 ReqNodeList=(null) ExcNodeList=(null) NodeList= NumNodes=1 NumCPUs=1 NumTasks=1 CPUs/Task=1 ReqB:S:C:T=0:0:*:* TRES=cpu=1,mem=3013M,node=1,billing=1 Socks/Node=* NtasksPerN:B:S:C=0:0:*:* CoreSpec=* MinCPUsNode=1 MinMemoryCPU=3013M MinTmpDiskNode=0 Features=(null) DelayBoot=00:00:00 OverSubscribe=OK Contiguous=0 Licenses=(null) Network=(null) Command=/work/scratch/slurm/exp/job.sh WorkDir=/work/scratch/slurm/exp StdErr=/dev/null StdIn=/dev/null StdOut=/dev/null Power= "#;
const SPECIAL_EXIT: &str = r#"JobId=47 JobName=rqexit76 UserId=root(0) GroupId=root(0) MCS_label=N/A Priority=0 Nice=0 Account=(null) QOS=(null) JobState=SPECIAL_EXIT Reason=JobHeldUser Dependency=(null) Requeue=1 Restarts=1 BatchFlag=1 Reboot=0 ExitCode=76:0 RunTime=00:00:00 TimeLimit=365-00:00:00 TimeMin=N/A SubmitTime=2026-11-29T22:33:47 EligibleTime=2026-11-29T22:33:53 AccrueTime=2026-11-29T22:33:53 StartTime=Unknown EndTime=Unknown Deadline=N/A SuspendTime=None SecsPreSuspend=0 LastSchedEval=2026-11-29T22:33:47 Scheduler=Main Partition=debug AllocNode:Sid=localhost:9133 ReqNodeList=(null) ExcNodeList=(null) NodeList= NumNodes=1 NumCPUs=1 NumTasks=1 CPUs/Task=1 ReqB:S:C:T=0:0:*:* TRES=cpu=1,mem=3013M,node=1,billing=1 Socks/Node=* NtasksPerN:B:S:C=0:0:*:* CoreSpec=* MinCPUsNode=1 MinMemoryCPU=3013M MinTmpDiskNode=0 Features=(null) DelayBoot=00:00:00 OverSubscribe=OK Contiguous=0 Licenses=(null) Network=(null) Command=/work/scratch/slurm/exp/job.sh WorkDir=/work/scratch/slurm/exp StdErr=/work/scratch/slurm/exp/out/rq-47.out StdIn=/dev/null StdOut=/work/scratch/slurm/exp/out/rq-47.out Power= "#;
const REQUEUE_HOLD: &str = r#"JobId=311 JobName=rh UserId=root(0) GroupId=root(0) MCS_label=N/A Priority=0 Nice=0 Account=(null) QOS=(null) JobState=PENDING Reason=job_requeued_in_held_state Dependency=(null) Requeue=1 Restarts=1 BatchFlag=1 Reboot=0 ExitCode=0:0 RunTime=00:00:00 TimeLimit=UNLIMITED TimeMin=N/A SubmitTime=2026-11-29T22:40:15 EligibleTime=2026-11-29T22:40:21 AccrueTime=2026-11-29T22:40:21 StartTime=2026-11-29T22:40:21 EndTime=Unknown Deadline=N/A SuspendTime=None SecsPreSuspend=0 LastSchedEval=2026-11-29T22:40:14 Scheduler=Main Partition=debug AllocNode:Sid=localhost:9133 ReqNodeList=(null) ExcNodeList=(null) NodeList= NumNodes=1 NumCPUs=1 NumTasks=1 CPUs/Task=1 ReqB:S:C:T=0:0:*:* TRES=cpu=1,mem=3013M,node=1,billing=1 Socks/Node=* NtasksPerN:B:S:C=0:0:*:* CoreSpec=* MinCPUsNode=1 MinMemoryCPU=3013M MinTmpDiskNode=0 Features=(null) DelayBoot=00:00:00 OverSubscribe=OK Contiguous=0 Licenses=(null) Network=(null) Command=/work/scratch/slurm/exp/job.sh WorkDir=/work/scratch/slurm/exp StdErr=/dev/null StdIn=/dev/null StdOut=/dev/null Power= "#;
const AWKWARD: &str = r#"JobId=307 JobName=name with  spaces=x UserId=root(0) GroupId=root(0) MCS_label=N/A Priority=4294901694 Nice=0 Account=(null) QOS=(null) JobState=PENDING Reason=None Dependency=(null) Requeue=1 Restarts=0 BatchFlag=1 Reboot=0 ExitCode=0:0 RunTime=00:00:00 TimeLimit=UNLIMITED TimeMin=N/A SubmitTime=2026-11-29T22:38:16 EligibleTime=2026-11-29T22:38:16 AccrueTime=Unknown StartTime=Unknown EndTime=Unknown Deadline=N/A SuspendTime=None SecsPreSuspend=0 LastSchedEval=2026-11-29T22:38:16 Scheduler=Main Partition=debug AllocNode:Sid=localhost:9133 ReqNodeList=(null) ExcNodeList=(null) NodeList= NumNodes=1 NumCPUs=1 NumTasks=1 CPUs/Task=1 ReqB:S:C:T=0:0:*:* TRES=cpu=1,mem=3013M,node=1,billing=1 Socks/Node=* NtasksPerN:B:S:C=0:0:*:* CoreSpec=* MinCPUsNode=1 MinMemoryCPU=3013M MinTmpDiskNode=0 Features=(null) DelayBoot=00:00:00 OverSubscribe=OK Contiguous=0 Licenses=(null) Network=(null) Command=/tmp/dir with space/my job.sh arg1 arg 2 k=v WorkDir=/tmp/dir with space Comment=a comment=with spaces  StdErr=/tmp/dir with space/307.out StdIn=/dev/null StdOut=/tmp/dir with space/307.out Power= "#;

const GRES_JOB: &str = r#"JobId=313 JobName=envjob.sh UserId=root(0) GroupId=root(0) MCS_label=N/A Priority=4294901688 Nice=0 Account=(null) QOS=(null) JobState=COMPLETED Reason=None Dependency=(null) Requeue=1 Restarts=0 BatchFlag=1 Reboot=0 ExitCode=0:0 RunTime=00:00:00 TimeLimit=365-00:00:00 TimeMin=N/A SubmitTime=2026-11-29T22:41:29 EligibleTime=2026-11-29T22:41:29 AccrueTime=2026-11-29T22:41:29 StartTime=2026-11-29T22:41:30 EndTime=2026-11-29T22:41:30 Deadline=N/A SuspendTime=None SecsPreSuspend=0 LastSchedEval=2026-11-29T22:41:30 Scheduler=Backfill Partition=debug AllocNode:Sid=localhost:9133 ReqNodeList=(null) ExcNodeList=(null) NodeList=vm BatchHost=vm NumNodes=1 NumCPUs=1 NumTasks=1 CPUs/Task=1 ReqB:S:C:T=0:0:*:* TRES=cpu=1,mem=12052M,node=1,billing=1 Socks/Node=* NtasksPerN:B:S:C=0:0:*:* CoreSpec=* MinCPUsNode=1 MinMemoryCPU=12052M MinTmpDiskNode=0 Features=(null) DelayBoot=00:00:00 OverSubscribe=OK Contiguous=0 Licenses=(null) Network=(null) Command=/work/scratch/slurm/exp/envjob.sh WorkDir=/work/scratch/slurm/exp StdErr=/tmp/g1.out StdIn=/dev/null StdOut=/tmp/g1.out Power= TresPerNode=gres:gpu:1 "#;

/// `squeue --noheader --states=all --Format=` + SQUEUE_FORMAT, lines from several captures.
const SQUEUE: &str = "7|PENDING|Resources||0|pend
8|PENDING|JobHeldUser||0|held
6|RUNNING|None|vm|0|my job
308|COMPLETING|None|vm|1|pixelx-run-abc
308|PENDING|BeginTime||1|pixelx-run-abc
309|CANCELLED|None|vm|0|pixelx-run-def
311|PENDING|job requeued in held state||1|rh
307|PENDING|None||0|name with  spaces=x
";

fn job(line: &str) -> JobInfo {
    parse_scontrol_show_job(line).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn sbatch_parsable() {
    assert_eq!(parse_sbatch_parsable("1\n"), Ok(1));
    assert_eq!(parse_sbatch_parsable("42;pixelx\n"), Ok(42));
    assert!(parse_sbatch_parsable("").is_err());
    assert!(parse_sbatch_parsable("Submitted batch job 2\n").is_err());
}

#[test]
fn job_state_names_and_codes() {
    assert_eq!("RUNNING".parse(), Ok(JobState::Running));
    assert_eq!("CG".parse(), Ok(JobState::Completing));
    assert_eq!("NODE_FAIL".parse(), Ok(JobState::NodeFail));
    assert_eq!("SPECIAL_EXIT".parse(), Ok(JobState::SpecialExit));
    assert_eq!("WEIRD".parse(), Ok(JobState::Other("WEIRD".into())));
    assert_eq!(JobState::OutOfMemory.to_string(), "OUT_OF_MEMORY");
    assert_eq!(JobState::Other("WEIRD".into()).to_string(), "WEIRD");
    assert!(JobState::Completing.is_active() && !JobState::Completing.is_finished());
    assert!(JobState::Timeout.is_finished() && !JobState::Timeout.is_active());
    let other = JobState::Other("X".into());
    assert!(!other.is_active() && !other.is_finished());
}

#[test]
fn exit_codes() {
    assert_eq!("1:0".parse(), Ok(ExitCode { status: 1, signal: 0 }));
    assert_eq!("0:9".parse(), Ok(ExitCode { status: 0, signal: 9 }));
    assert!("x".parse::<ExitCode>().is_err());
}

#[test]
fn running_and_pending() {
    let j = job(RUNNING);
    assert_eq!((j.id, j.name.as_str(), &j.state), (9, "ok", &JobState::Running));
    assert_eq!(
        (j.reason.as_deref(), j.node.as_deref(), j.restart_count),
        (None, Some("vm"), 0)
    );
    assert_eq!(j.std_out.as_deref(), Some("/work/scratch/slurm/exp/out/9.out"));
    assert_eq!(j.work_dir.as_deref(), Some("/work/scratch/slurm/exp"));
    assert_eq!(j.fields["BatchHost"], "vm");
    assert_eq!(j.fields["Power"], "");
    assert!(j.requeue);
    assert_eq!(j.outcome(), Outcome::Running);

    let j = job(PENDING_RESOURCES);
    assert_eq!(
        (j.reason.as_deref(), j.node.as_deref()),
        (Some("Resources"), None)
    );
    assert_eq!((j.outcome(), j.stuck_reason()), (Outcome::Pending, None));
}

#[test]
fn finished_jobs() {
    assert_eq!(job(COMPLETED).outcome(), Outcome::Completed);
    let j = job(FAILED_EXIT_1);
    assert_eq!(j.exit_code, Some(ExitCode { status: 1, signal: 0 }));
    assert_eq!(
        j.outcome(),
        Outcome::Failed("FAILED (NonZeroExitCode), ExitCode=1:0".into())
    );
    // scancel: the worker exited 143 on SIGTERM.
    let j = job(CANCELLED_RUNNING);
    assert_eq!(
        (j.outcome(), j.exit_code.unwrap().status),
        (Outcome::Cancelled, 143)
    );
    assert_eq!(job(CANCELLED_PENDING).outcome(), Outcome::Cancelled);
    assert_eq!(
        job(TIMEOUT).outcome(),
        Outcome::Failed("TIMEOUT (TimeLimit), ExitCode=143:0".into())
    );
    // kill -9 of the worker: Slurm 22.05 calls it a launch failure.
    let j = job(KILLED_9);
    assert_eq!(
        j.outcome(),
        Outcome::Failed("FAILED (JobLaunchFailure), ExitCode=0:9".into())
    );
    // --mem over the node: sbatch failed, yet the id exists as FAILED, never ran.
    let j = job(REJECTED_MEM);
    assert_eq!(
        (j.node.as_deref(), j.outcome()),
        (
            None,
            Outcome::Failed("FAILED (BadConstraints), ExitCode=0:1".into())
        )
    );
}

#[test]
fn stuck_pending() {
    let j = job(PENDING_PARTITION_CONFIG);
    assert_eq!(
        (j.outcome(), j.stuck_reason()),
        (Outcome::Pending, Some("PartitionConfig"))
    );
    let j = job(REQUEUE_HOLD);
    assert_eq!(j.stuck_reason(), Some("job_requeued_in_held_state"));
    assert_eq!(j.restart_count, 1);
    let j = job(SPECIAL_EXIT);
    assert_eq!(
        (j.outcome(), j.stuck_reason()),
        (Outcome::Requeued, Some("JobHeldUser"))
    );
    assert_eq!(
        j.exit_code,
        Some(ExitCode {
            status: 76,
            signal: 0
        })
    );
}

#[test]
fn requeue_sequence() {
    let j = job(COMPLETING_REQUEUE);
    assert_eq!(
        (j.state.clone(), j.restart_count, j.outcome()),
        (JobState::Completing, 1, Outcome::Running)
    );
    let j = job(REQUEUED_BEGIN_TIME);
    assert_eq!(
        (j.outcome(), j.reason.as_deref(), j.restart_count),
        (Outcome::Pending, Some("BeginTime"), 1)
    );
    assert_eq!(j.id, 308);
}

#[test]
fn values_with_spaces_and_equals() {
    let j = job(AWKWARD);
    assert_eq!(j.name, "name with  spaces=x");
    assert_eq!(
        j.fields["Command"],
        "/tmp/dir with space/my job.sh arg1 arg 2 k=v"
    );
    assert_eq!(j.work_dir.as_deref(), Some("/tmp/dir with space"));
    assert_eq!(j.fields["Comment"], "a comment=with spaces");
    assert_eq!(j.std_out.as_deref(), Some("/tmp/dir with space/307.out"));
    assert_eq!(j.fields["UserId"], "root(0)");
    assert_eq!(j.fields["AllocNode:Sid"], "localhost:9133");
}

#[test]
fn scontrol_errors_and_many() {
    assert!(parse_scontrol_show_job("").is_err());
    assert!(parse_scontrol_show_job("slurm_load_jobs error: Invalid job id specified").is_err());
    let all = format!("{RUNNING}\n{FAILED_EXIT_1}\n");
    let ids: Vec<u64> = parse_scontrol_show_jobs(&all)
        .unwrap()
        .iter()
        .map(|j| j.id)
        .collect();
    assert_eq!(ids, [9, 10]);
}

#[test]
fn squeue_rows() {
    let rows = parse_squeue(SQUEUE).unwrap();
    assert_eq!(rows.len(), 8);
    assert_eq!(rows[0].reason.as_deref(), Some("Resources"));
    assert_eq!(
        (rows[2].node.as_deref(), rows[2].name.as_str()),
        (Some("vm"), "my job")
    );
    assert_eq!((rows[4].restart_count, rows[4].outcome()), (1, Outcome::Pending));
    assert_eq!(rows[5].outcome(), Outcome::Cancelled);
    assert_eq!(rows[6].reason.as_deref(), Some("job requeued in held state"));
    assert_eq!(rows[7].name, "name with  spaces=x");
    assert!(parse_squeue("1|RUNNING\n").is_err());
    assert_eq!(parse_squeue(""), Ok(vec![]));
}

#[test]
fn squeue_arguments() {
    assert_eq!(
        squeue_args(&[3, 4]),
        [
            "--noheader",
            "--states=all",
            "--jobs=3,4",
            "--Format=JobID:|,State:|,Reason:|,NodeList:|,RestartCnt:|,Name:"
        ]
    );
    assert_eq!(squeue_args(&[]).len(), 3);
}

#[test]
fn quoting() {
    assert_eq!(shell_quote("runs/abc"), "runs/abc");
    assert_eq!(shell_quote("a b"), "'a b'");
    assert_eq!(shell_quote("it's"), r"'it'\''s'");
    assert_eq!(shell_quote(""), "''");
    assert_eq!(shell_quote("$HOME"), "'$HOME'");
}

#[test]
fn batch_script() {
    let spec = BatchSpec {
        job_name: "pixelx-3f2a".into(),
        output: "/tmp/dir with space/runs/3f2a/slurm/%j.out".into(),
        append_output: true,
        requeue: true,
        signal: Some(("USR2".into(), 120)),
        partition: Some("debug".into()),
        time: Some("1-01:01:01".into()),
        cpus_per_task: Some(2),
        gres: Some("gpu:1".into()),
        mem: Some("4096M".into()),
        extra: vec!["--comment=\"sweep 7\"".into()],
        command: vec![
            "/usr/bin/pixelx".into(),
            "worker".into(),
            "3f2a".into(),
            "--runs-dir".into(),
            "my runs".into(),
        ],
    };
    let expected = r#"#!/bin/bash
#SBATCH --job-name=pixelx-3f2a
#SBATCH --output="/tmp/dir with space/runs/3f2a/slurm/%j.out"
#SBATCH --open-mode=append
#SBATCH --requeue
#SBATCH --signal=B:USR2@120
#SBATCH --partition=debug
#SBATCH --time=1-01:01:01
#SBATCH --cpus-per-task=2
#SBATCH --gres=gpu:1
#SBATCH --mem=4096M
#SBATCH --comment="sweep 7"
exec /usr/bin/pixelx worker 3f2a --runs-dir 'my runs'
"#;
    assert_eq!(render_batch_script(&spec).unwrap(), expected);

    let minimal = BatchSpec {
        job_name: "a b".into(),
        output: "o".into(),
        command: vec!["true".into()],
        ..Default::default()
    };
    assert_eq!(
        render_batch_script(&minimal).unwrap(),
        "#!/bin/bash\n#SBATCH --job-name=\"a b\"\n#SBATCH --output=o\n#SBATCH --no-requeue\nexec true\n"
    );
    assert!(render_batch_script(&BatchSpec {
        command: vec![],
        ..minimal.clone()
    })
    .is_err());
    assert!(render_batch_script(&BatchSpec {
        job_name: "a\nb".into(),
        ..minimal.clone()
    })
    .is_err());
    assert!(render_batch_script(&BatchSpec {
        job_name: "a\"b'c".into(),
        ..minimal
    })
    .is_err());
}

#[test]
fn gres_job_has_tres_after_power() {
    let j = job(GRES_JOB);
    assert_eq!(j.fields["TresPerNode"], "gres:gpu:1");
    assert_eq!(j.fields["Power"], "");
    assert_eq!(j.std_out.as_deref(), Some("/tmp/g1.out"));
}
