"""Restart semantics: what each failure means, counted exactly once, with back-off."""

from __future__ import annotations

from planner_world import World, make_job, replica


def running_world(job: dict) -> World:
    world = World(job)
    world.settle()
    world.run()
    world.step()
    assert world.phase == "Running"
    return world


def test_in_place_restarts_count_once_per_delta() -> None:
    world = running_world(make_job(workers=2, runPolicy={"backoffLimit": 5}))
    world.restart_in_place("mnist-worker-0", 2)
    p = world.step()
    assert world.status["restartCount"] == 2
    assert world.status["replicaStatuses"]["worker"]["restarts"] == 2
    assert [e.reason for e in p.events] == ["ContainerRestarted"]
    assert world.phase == "Running" and not p.deletes and not p.creates
    for _ in range(3):  # seen again and again: nothing counted twice
        p = world.step()
        assert p.status is None and not p.events
    world.restart_in_place("mnist-worker-0", 1)
    world.restart_in_place("mnist-worker-1", 1)
    world.step()
    assert world.status["restartCount"] == 4


def test_in_place_restarts_exceeding_backoff_limit_fail_the_job() -> None:
    world = running_world(make_job(workers=1, runPolicy={"backoffLimit": 2}))
    world.restart_in_place("mnist-worker-0", 2)
    world.step()
    assert world.phase == "Running"
    world.restart_in_place("mnist-worker-0", 1)
    p = world.step()
    failed = world.condition("Failed")
    assert failed is not None and failed["reason"] == "BackoffLimitExceeded"
    assert failed["message"] == "3 restarts exceed backoffLimit 2"
    assert "Warning" in {e.type for e in p.events}


def test_failed_pod_is_counted_once_kept_during_backoff_then_recreated() -> None:
    job = make_job(workers=2, policy="ExitCode", runPolicy={"backoffLimit": 5})
    world = running_world(job)
    world.fail("mnist-worker-1", 137)
    p = world.step()
    assert world.status["restartCount"] == 1
    assert world.phase == "Restarting"
    restarting = world.condition("Restarting")
    assert restarting is not None and restarting["reason"] == "PodRecreating"
    assert [e.reason for e in p.events] == ["PodFailed", "PodRecreating"]
    assert "exited with code 137" in p.events[0].message
    assert not p.deletes and p.requeue_after == 10  # kept for `kubectl logs` during back-off
    world.advance(5)
    p = world.step()
    assert p.status is None and not p.deletes and p.requeue_after == 5
    world.advance(5)
    p = world.step()
    assert [(d.name, d.reason) for d in p.deletes] == [("mnist-worker-1", "Recreating")]
    assert world.status["restartCount"] == 1
    p = world.step()
    assert [o["metadata"]["name"] for o in p.creates] == ["mnist-worker-1"]
    world.run()
    world.step()
    assert world.phase == "Running" and world.status["restartCount"] == 1


def test_a_failed_pod_seen_again_before_its_deletion_is_observed_counts_once() -> None:
    job = make_job(
        workers=1, policy="ExitCode", runPolicy={"restartBackoff": {"initialSeconds": 0}}
    )
    world = running_world(job)
    world.fail("mnist-worker-0", 143)
    p = world.plan()
    world.apply(p, finish=False)  # status written, delete issued but not yet observed
    assert world.pods["mnist-worker-0"]["metadata"].get("deletionTimestamp")
    for _ in range(3):
        p = world.step(finish=False)
        assert not p.creates  # the name is still taken by the dying pod
    assert world.status["restartCount"] == 1


def test_crash_after_status_write_replans_the_same_actions_without_recounting() -> None:
    job = make_job(
        workers=2, policy="ExitCode", runPolicy={"restartBackoff": {"initialSeconds": 0}}
    )
    world = running_world(job)
    world.fail("mnist-worker-0", 139)
    first = world.plan()
    world.job["status"] = first.status  # the handlers crashed right after the status write
    again = world.plan()
    assert again.status is None and not again.events
    assert again.deletes == first.deletes and again.creates == first.creates
    assert world.status["restartCount"] == 1


def test_no_backoff_replaces_a_failed_pod_at_once_even_mid_second() -> None:
    job = make_job(
        workers=1, policy="ExitCode", runPolicy={"restartBackoff": {"initialSeconds": 0}}
    )
    world = running_world(job)
    world.advance(0.6)  # the status holds whole seconds; a fraction must not add a wait
    world.fail("mnist-worker-0", 137)
    p = world.step()
    assert [(d.name, d.reason) for d in p.deletes] == [("mnist-worker-0", "Recreating")]
    assert not p.requeue_after
    assert [o["metadata"]["name"] for o in world.step().creates] == ["mnist-worker-0"]


def test_backoff_doubles_and_is_capped() -> None:
    backoff = {"initialSeconds": 10, "maxSeconds": 30}
    job = make_job(
        workers=1, policy="ExitCode", runPolicy={"backoffLimit": 10, "restartBackoff": backoff}
    )
    world = running_world(job)
    waits = []
    for _ in range(4):
        world.fail("mnist-worker-0", 137)
        p = world.step()
        waits.append(p.requeue_after)
        world.advance(p.requeue_after or 0)
        world.step()  # delete
        world.step()  # create
        world.run()
        world.step()
    assert waits == [10, 20, 30, 30]
    assert world.status["restartCount"] == 4


def test_backoff_starts_over_after_a_long_healthy_run() -> None:
    job = make_job(workers=1, policy="ExitCode")
    world = running_world(job)
    world.fail("mnist-worker-0", 137)
    world.advance(world.step().requeue_after or 0)
    world.settle()
    world.run()
    world.step()
    world.advance(3600)
    world.fail("mnist-worker-0", 137)
    assert world.step().requeue_after == 10


def test_exit_code_not_retryable_fails_naming_code_pod_and_container() -> None:
    world = running_world(make_job(workers=2, policy="ExitCode"))
    world.fail("mnist-worker-1", 3)
    p = world.step()
    failed = world.condition("Failed")
    assert failed is not None and failed["reason"] == "ExitCodeNotRetryable"
    assert failed["message"] == (
        "container 'trainer' of pod mnist-worker-1 exited with code 3, "
        "which is not a retryable exit code"
    )
    assert world.status["restartCount"] == 0 and not p.creates
    assert world.status["completionTime"] == world.ts()


def test_retryable_exit_codes_list_overrides_the_default_split() -> None:
    job = make_job(workers=1, policy="ExitCode", runPolicy={"retryableExitCodes": [42]})
    world = running_world(job)
    world.fail("mnist-worker-0", 42)
    world.step()
    assert world.phase == "Restarting"
    world = running_world(job)
    world.fail("mnist-worker-0", 137)
    world.step()
    assert world.phase == "Failed"


def test_never_policy_fails_on_first_failure() -> None:
    world = running_world(make_job(workers=2, policy="Never"))
    world.fail("mnist-worker-0", 137)
    world.step()
    failed = world.condition("Failed")
    assert failed is not None and failed["reason"] == "PodFailed"
    assert "restartPolicy Never" in failed["message"]


def test_disruptions_are_retried_without_counting_even_under_never() -> None:
    for policy in ("Never", "ExitCode", "OnFailure"):
        world = running_world(make_job(workers=2, policy=policy, runPolicy={"backoffLimit": 0}))
        world.fail("mnist-worker-0", 143, disruption="PreemptionByScheduler")
        p = world.step()
        assert world.phase == "Restarting", policy
        assert world.status["restartCount"] == 0
        assert [e.reason for e in p.events][:1] == ["PodDisrupted"]
        assert [d.name for d in p.deletes] == ["mnist-worker-0"]  # no back-off for disruptions
        world.settle()
        world.run()
        world.step()
        assert world.phase == "Running" and world.status["restartCount"] == 0


def test_evicted_and_node_lost_pods_are_disruptions() -> None:
    for reason in ("Evicted", "NodeLost"):
        world = running_world(make_job(workers=1, runPolicy={"backoffLimit": 0}))
        world.fail("mnist-worker-0", None, reason=reason)
        p = world.step()
        assert world.phase == "Restarting" and world.status["restartCount"] == 0
        assert reason in p.events[0].message


def test_on_failure_pod_that_still_fails_is_recreated_and_counted() -> None:
    world = running_world(make_job(workers=1, runPolicy={"backoffLimit": 3}))
    world.restart_in_place("mnist-worker-0", 1)
    world.step()
    world.fail("mnist-worker-0", 1, reason="DeadlineExceeded")
    world.step()
    assert world.status["restartCount"] == 2  # one in place, one recreation
    assert world.phase == "Restarting"


def test_recreations_exceeding_backoff_limit_fail_the_job() -> None:
    backoff = {"initialSeconds": 0}
    job = make_job(
        workers=1, policy="ExitCode", runPolicy={"backoffLimit": 1, "restartBackoff": backoff}
    )
    world = running_world(job)
    world.fail("mnist-worker-0", 137)
    world.settle()
    world.run()
    world.step()
    world.fail("mnist-worker-0", 137)
    world.step()
    assert world.condition("Failed")["reason"] == "BackoffLimitExceeded"  # type: ignore[index]


def test_parameter_server_failure_restarts_the_whole_job() -> None:
    roles = {"ps": replica(1, "ExitCode"), "worker": replica(2, "ExitCode")}
    world = running_world(make_job(roles=roles))
    world.fail("mnist-ps-0", 137)
    p = world.step()
    assert world.phase == "Restarting"
    assert world.condition("Restarting")["reason"] == "JobRestarting"  # type: ignore[index]
    assert sorted((d.name, d.reason) for d in p.deletes) == [
        ("mnist-worker-0", "JobRestarting"),
        ("mnist-worker-1", "JobRestarting"),
    ]
    assert world.status["restartCount"] == 1 and p.requeue_after == 10
    # Workers dying from the restart are not failures.
    p = world.step()
    assert not p.creates and p.requeue_after == 10
    world.advance(10)
    world.settle()
    assert world.pod_names() == ["mnist-ps-0", "mnist-worker-0", "mnist-worker-1"]
    world.run()
    world.step()
    assert world.phase == "Running" and world.status["restartCount"] == 1


def test_pods_killed_by_a_whole_job_restart_are_not_counted() -> None:
    roles = {"ps": replica(1, "ExitCode"), "worker": replica(2, "ExitCode")}
    world = running_world(make_job(roles=roles))
    world.fail("mnist-ps-0", 137)
    world.apply(world.plan(), finish=False)
    world.fail("mnist-worker-0", 143)  # SIGTERM from the deletion
    world.fail("mnist-worker-1", 1)  # even a non-retryable code
    world.step(finish=False)
    assert world.phase == "Restarting" and world.status["restartCount"] == 1


def test_workers_failing_in_the_same_observation_as_their_ps_are_its_consequence() -> None:
    """The ps dies mid-request: its workers fail too (a connection error, exit 1 or a
    retryable code) before the operator has seen the ps go. One restart counts: the ps's."""
    roles = {"ps": replica(1, "ExitCode"), "worker": replica(2, "ExitCode")}
    world = running_world(make_job(roles=roles))
    world.fail("mnist-ps-0", 137)
    world.fail("mnist-worker-0", 1)  # not retryable, yet its ps is the cause
    world.fail("mnist-worker-1", 138)
    p = world.step()
    assert world.phase == "Restarting", world.status
    assert world.status["restartCount"] == 1
    assert [e.reason for e in p.events].count("RestartNotCounted") == 2
    world.advance(10)
    world.settle()
    world.run()
    world.step()
    assert world.phase == "Running" and world.status["restartCount"] == 1


def test_old_workers_failing_after_their_ps_went_are_not_counted() -> None:
    """The ps vanished (not counted); a worker fails before the restart deletes it."""
    roles = {"ps": replica(1), "worker": replica(2, "OnFailure")}
    world = running_world(make_job(roles=roles))
    world.remove("mnist-ps-0")
    world.fail("mnist-worker-1", 1)
    world.restart_in_place("mnist-worker-0")
    world.step()
    assert world.status["restartCount"] == 0 and world.phase == "Restarting"


def test_fresh_workers_failing_after_a_whole_job_restart_count() -> None:
    """Only the old generation is absorbed: once the fresh ps runs, a fresh worker's own
    failure counts as usual (a crash loop cannot hide behind the restart)."""
    roles = {"ps": replica(1, "ExitCode"), "worker": replica(2, "ExitCode")}
    world = running_world(make_job(roles=roles))
    world.fail("mnist-ps-0", 137)
    world.step()
    world.advance(10)
    world.settle()
    assert world.pod_names() == ["mnist-ps-0", "mnist-worker-0", "mnist-worker-1"]
    world.advance(1)
    world.fail("mnist-worker-1", 137)  # before the job ran complete again
    world.step()
    assert world.status["restartCount"] == 2


def test_vanished_parameter_server_restarts_the_whole_job_without_counting() -> None:
    roles = {"ps": replica(1), "worker": replica(2)}
    world = running_world(make_job(roles=roles))
    world.remove("mnist-ps-0")
    p = world.step()
    assert "ParameterServerLost" in [e.reason for e in p.events]
    assert sorted(d.name for d in p.deletes) == ["mnist-worker-0", "mnist-worker-1"]
    assert world.status["restartCount"] == 0 and world.phase == "Restarting"


def test_parameter_server_not_observed_yet_is_not_lost() -> None:
    """The demo's false ParameterServerLost: the index showed the fresh workers, not the ps."""
    world = World(make_job(roles={"ps": replica(1), "worker": replica(2)}))
    p = world.step()
    assert sorted(world.created_last) == ["mnist-ps-0", "mnist-worker-0", "mnist-worker-1"]
    uids = {n: world.pods[n]["metadata"]["uid"] for n in world.pod_names()}
    world.withheld = {"mnist-ps-0"}
    world.run("mnist-worker-0", "mnist-worker-1")
    for _ in range(3):
        p = world.step()
        assert "ParameterServerLost" not in [e.reason for e in p.events]
        assert not p.deletes and world.phase == "Created"
        # Creating it again is harmless: the name is taken, so the create is a 409.
        assert [o["metadata"]["name"] for o in p.creates] == ["mnist-ps-0"]
    world.withheld = set()
    world.pods["mnist-ps-0"]["status"] = {}  # seen at last, before the kubelet wrote a phase
    p = world.step()
    assert not p.creates and not p.deletes and world.phase == "Created"
    world.run()
    world.step()
    assert world.phase == "Running" and world.status["restartCount"] == 0
    assert {n: world.pods[n]["metadata"]["uid"] for n in world.pod_names()} == uids


def test_parameter_server_observed_then_vanished_is_lost_even_if_never_running() -> None:
    world = World(make_job(roles={"ps": replica(1), "worker": replica(2)}))
    world.settle()  # every pod observed, all still Pending
    world.remove("mnist-ps-0")
    p = world.step()
    assert [e.reason for e in p.events] == ["ParameterServerLost", "JobRestarting"]
    assert sorted(d.name for d in p.deletes) == ["mnist-worker-0", "mnist-worker-1"]


def test_fresh_parameter_server_after_a_whole_job_restart_is_not_lost_while_unobserved() -> None:
    roles = {"ps": replica(1, "ExitCode"), "worker": replica(2, "ExitCode")}
    world = running_world(make_job(roles=roles))
    world.fail("mnist-ps-0", 137)
    world.step()  # workers released
    world.advance(10)
    world.step()  # the failed ps goes
    p = world.step()  # the fresh ps and workers are created together
    assert sorted(world.created_last) == ["mnist-ps-0", "mnist-worker-0", "mnist-worker-1"]
    world.withheld = {"mnist-ps-0"}
    p = world.step()
    assert "ParameterServerLost" not in [e.reason for e in p.events] and not p.deletes
    world.withheld = set()
    world.run()
    world.step()
    assert world.phase == "Running" and world.status["restartCount"] == 1
    # Once observed, the fresh ps vanishing is a loss again.
    world.remove("mnist-ps-0")
    p = world.step()
    assert "ParameterServerLost" in [e.reason for e in p.events]


def test_worker_failure_restarts_only_that_worker() -> None:
    roles = {"chief": replica(1, "ExitCode"), "worker": replica(3, "ExitCode")}
    world = running_world(
        make_job(roles=roles, runPolicy={"restartBackoff": {"initialSeconds": 0}})
    )
    uids = {n: world.pods[n]["metadata"]["uid"] for n in world.pod_names()}
    world.fail("mnist-chief-0", 137)
    world.settle()
    assert {n: world.pods[n]["metadata"]["uid"] != uids[n] for n in uids} == {
        "mnist-chief-0": True,
        "mnist-worker-0": False,
        "mnist-worker-1": False,
        "mnist-worker-2": False,
    }


def test_a_pod_deleted_by_someone_else_blocks_its_name_and_its_failure_is_not_counted() -> None:
    # Deleting a pod is a disruption (issue #15: "its pod deleted ... only the process kill is
    # counted"): the SIGTERM exit that follows is its consequence.
    world = running_world(make_job(workers=2, policy="ExitCode"))
    world.pods["mnist-worker-0"]["metadata"]["deletionTimestamp"] = world.ts()  # kubectl delete
    p = world.step()
    assert not p.creates and not p.deletes
    assert world.status["replicaStatuses"]["worker"]["active"] == 1
    assert world.phase == "Restarting"
    world.fail("mnist-worker-0", 143)
    world.step()
    world.step()
    assert world.status["restartCount"] == 0
    assert world.status["tracking"]["disruption"]["cause"] == "mnist-worker-0"
    world.remove("mnist-worker-0")
    world.advance(10)
    p = world.step()
    assert [o["metadata"]["name"] for o in p.creates] == ["mnist-worker-0"]


def test_vanished_pod_is_recreated_immediately_and_not_counted() -> None:
    world = running_world(make_job(workers=2))
    world.remove("mnist-worker-1")
    p = world.step()
    assert [o["metadata"]["name"] for o in p.creates] == ["mnist-worker-1"]
    assert world.phase == "Restarting" and world.status["restartCount"] == 0


def test_foreign_namesake_blocks_creation_and_is_never_touched() -> None:
    world = World(make_job(workers=1))
    world.pods["mnist-worker-0"] = {
        "metadata": {
            "name": "mnist-worker-0",
            "uid": "old",
            "labels": {"elastrain.dev/job-name": "mnist"},
            "ownerReferences": [
                {
                    "apiVersion": "elastrain.dev/v1alpha1",
                    "kind": "TrainingJob",
                    "name": "mnist",
                    "controller": True,
                    "uid": "previous-job",
                }
            ],
        },
        "status": {"phase": "Failed"},
    }
    p = world.step()
    assert [o["kind"] for o in p.creates] == ["Service"] and not p.deletes
    assert world.status["restartCount"] == 0


def test_whole_job_restart_recreates_workers_only_with_the_fresh_parameter_servers() -> None:
    roles = {"ps": replica(2, "ExitCode"), "worker": replica(2, "ExitCode")}
    world = running_world(make_job(roles=roles))
    world.fail("mnist-ps-1", 137)
    reasons: list[str] = []
    deleted: list[str] = []
    for _ in range(3):
        p = world.step()
        reasons += [e.reason for e in p.events]
        deleted += [d.name for d in p.deletes]
    world.advance(10)
    p = world.step()  # the failed ps goes now; workers must not come back before it is gone
    reasons += [e.reason for e in p.events]
    deleted += [d.name for d in p.deletes]
    assert [o["metadata"]["name"] for o in p.creates] == ["mnist-ps-0"]
    p = world.step()
    assert sorted(o["metadata"]["name"] for o in p.creates) == [
        "mnist-ps-1",
        "mnist-worker-0",
        "mnist-worker-1",
    ]
    world.settle()
    world.run()
    world.step()
    assert world.phase == "Running"
    assert "ParameterServerLost" not in reasons
    assert sorted(deleted) == ["mnist-ps-0", "mnist-ps-1", "mnist-worker-0", "mnist-worker-1"]
    assert world.status["restartCount"] == 1


def test_scaling_parameter_servers_rewires_without_a_restart() -> None:
    roles = {"ps": replica(1), "worker": replica(2)}
    world = running_world(make_job(roles=roles))
    world.job["spec"]["replicaSpecs"]["ps"]["replicas"] = 2
    p = world.step()
    assert "ParameterServerLost" not in [e.reason for e in p.events]
    assert world.phase == "Scaling"
    assert {d.reason for d in p.deletes} == {"WiringChanged"}
    world.settle()
    world.run()
    world.step()
    assert world.phase == "Running" and world.status["restartCount"] == 0
    tf_config = world.env("mnist-worker-0")["TF_CONFIG"]
    assert "mnist-ps-1.mnist.team-a.svc:2222" in tf_config


def test_kubelet_admission_rejections_are_disruptions() -> None:
    for reason in ("OutOfnvidia.com/gpu", "UnexpectedAdmissionError", "NodeAffinity"):
        world = running_world(make_job(workers=1, policy="Never", runPolicy={"backoffLimit": 0}))
        world.fail("mnist-worker-0", None, reason=reason)
        world.step()
        assert world.phase == "Restarting", reason
        assert world.status["restartCount"] == 0


def test_in_place_restart_event_names_the_exit_code_and_the_budget() -> None:
    world = running_world(make_job(workers=1, runPolicy={"backoffLimit": 6}))
    pod = world.pods["mnist-worker-0"]
    pod["status"]["containerStatuses"] = [
        {
            "name": "trainer",
            "restartCount": 2,
            "state": {"running": {}},
            "lastState": {"terminated": {"exitCode": 137}},
        }
    ]
    (event,) = world.step().events
    assert event.message == (
        "pod mnist-worker-0 restarted in place 2 time(s) (container 'trainer' last exited "
        "with code 137); 2 restart(s) used of backoffLimit 6"
    )


def test_native_sidecar_restarts_and_exits_are_not_the_programs() -> None:
    role = replica(1, "ExitCode")
    role["template"]["spec"]["initContainers"] = [
        {"name": "logs", "image": "x", "restartPolicy": "Always"}
    ]
    world = running_world(make_job(roles={"worker": role}, runPolicy={"backoffLimit": 0}))
    pod = world.pods["mnist-worker-0"]
    pod["status"]["initContainerStatuses"] = [{"name": "logs", "restartCount": 5}]
    p = world.step()
    assert world.status["restartCount"] == 0 and not p.events
    pod["status"] = {
        "phase": "Failed",
        "initContainerStatuses": [
            {"name": "logs", "restartCount": 5, "state": {"terminated": {"exitCode": 143}}}
        ],
        "containerStatuses": [
            {"name": "trainer", "restartCount": 0, "state": {"terminated": {"exitCode": 2}}}
        ],
    }
    world.step()
    failed = world.condition("Failed")
    assert failed is not None and "container 'trainer'" in failed["message"]
    assert "code 2" in failed["message"]


def test_pod_stuck_terminating_on_a_lost_node_is_named() -> None:
    world = running_world(make_job(workers=2))
    world.pods["mnist-worker-1"]["metadata"]["deletionTimestamp"] = "2026-01-01T12:00:30Z"
    world.pods["mnist-worker-0"]["status"] = {"phase": "Unknown"}
    world.step()
    restarting = world.condition("Restarting")
    assert restarting is not None and restarting["message"] == (
        "0/2 pods running; mnist-worker-0: phase Unknown (its node stopped reporting); "
        "mnist-worker-1: terminating (deletion requested, grace until 2026-01-01T12:00:30Z)"
    )
