"""The MQTT bridge's topic templates, options and in-order acknowledgements (no broker)."""

from __future__ import annotations

import threading

import pytest

from connectors.ingest.mqtt import InOrderAcks, MqttOptions, TopicMap, options_from
from fusewatch.core.errors import ConfigError, InvalidEventError
from fusewatch.core.plant import Plant


def plant(**mqtt: object) -> Plant:
    return Plant.model_validate({
        "mqtt": mqtt,
        "assets": [
            {"id": "pump-01", "kind": "pump", "vibration": {"source": "mqtt", "sensor_id": "acc-7", "unit": "m/s^2"},
             "camera": {"id": "cam-3", "source": "mqtt"}, "logs": {"source": "mqtt", "author": "cmms"}},
            {"id": "fan-02", "kind": "fan",
             "vibration": {"source": "opcua", "node": "ns=2;s=Fan", "sample_rate_hz": 1.0},
             "logs": {"source": "mqtt", "topic": "cmms/fan-02/entries"}},
        ]})


def test_the_default_template_takes_any_asset_without_a_plant() -> None:
    topics = TopicMap()
    assert topics.subscriptions() == ["plant/+/+"]
    assert topics.resolve("plant/any-asset.7/frame") == ("any-asset.7", "frame")
    assert topics.resolve("plant/a:b/log") == ("a:b", "log")


@pytest.mark.parametrize("topic, reason", [
    ("plant/pump-01/vibration/extra", "does not match the topic template"),
    ("other/pump-01/vibration", "does not match the topic template"),
    ("plant/pump-01/temperature", "modality 'temperature' is not vibration, frame or log"),
])
def test_unknown_topics_are_refused_with_the_reason(topic: str, reason: str) -> None:
    with pytest.raises(InvalidEventError, match=reason) as caught:
        TopicMap().resolve(topic)
    assert caught.value.field == "topic"


def test_a_template_with_fields_inside_levels() -> None:
    topics = TopicMap("site-a/line.{asset_id}/sensors/{modality}-v1")
    assert topics.subscriptions() == ["site-a/+/sensors/+"]
    assert topics.resolve("site-a/line.pump-01/sensors/vibration-v1") == ("pump-01", "vibration")
    with pytest.raises(InvalidEventError, match="does not match"):
        topics.resolve("site-a/pump-01/sensors/vibration-v1")


def test_the_modality_may_come_first() -> None:
    assert TopicMap("{modality}/{asset_id}").resolve("log/pump-01") == ("pump-01", "log")


@pytest.mark.parametrize("template", ["plant/{asset_id}", "plant/+/{asset_id}/{modality}", "p/{asset}/{modality}"])
def test_bad_templates_are_configuration_errors(template: str) -> None:
    with pytest.raises(ConfigError, match="topic template"):
        TopicMap(template)


def test_with_a_plant_only_its_mqtt_streams_are_taken() -> None:
    topics = TopicMap("plant/{asset_id}/{modality}", plant())
    assert topics.subscriptions() == ["plant/+/+", "cmms/fan-02/entries"]
    assert topics.resolve("plant/pump-01/vibration") == ("pump-01", "vibration")
    assert topics.resolve("cmms/fan-02/entries") == ("fan-02", "log")
    with pytest.raises(InvalidEventError, match="asset 'pump-09' is not in the plant file"):
        topics.resolve("plant/pump-09/vibration")
    with pytest.raises(InvalidEventError, match="no MQTT vibration stream"):  # fan-02's vibration is OPC UA
        topics.resolve("plant/fan-02/vibration")
    with pytest.raises(InvalidEventError, match="no MQTT log stream"):  # fan-02's logs have a topic of their own
        topics.resolve("plant/fan-02/log")


def test_stream_defaults_come_from_the_plant() -> None:
    topics = TopicMap("plant/{asset_id}/{modality}", plant())
    defaults = topics.defaults("pump-01")
    assert (defaults.sensor_id, defaults.unit, defaults.camera_id) == ("acc-7", "m/s^2", "cam-3")
    assert defaults.author == "cmms"
    assert TopicMap().defaults("pump-01").sensor_id == "acc-1"


def test_options_command_line_over_plant_over_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FW_TEST_MQTT_PASSWORD", "s3cret")
    the_plant = plant(url="mqtts://broker.plant:8884", client_id="bridge-a", username="bridge",
                      password_env="FW_TEST_MQTT_PASSWORD", session_expiry_s=3600)
    options = options_from(the_plant, None, None, None)
    assert options.host_port == ("broker.plant", 8884) and options.tls
    assert (options.client_id, options.username, options.session_expiry_s) == ("bridge-a", "bridge", 3600)
    assert options.password() == "s3cret"
    assert "s3cret" not in repr(options)
    options = options_from(the_plant, "mqtt://127.0.0.1", "bridge-b", "x/{modality}/{asset_id}")
    assert options.host_port == ("127.0.0.1", 1883) and not options.tls
    assert (options.client_id, options.template) == ("bridge-b", "x/{modality}/{asset_id}")
    assert options_from(None, None, None, None).host_port == ("127.0.0.1", 1883)
    assert MqttOptions(url="mqtts://h").host_port == ("h", 8883)
    with pytest.raises(ConfigError, match="--mqtt: 'tcp://h:1' is not"):
        options_from(None, "tcp://h:1", None, None)


def test_a_missing_password_variable_is_named() -> None:
    options = options_from(plant(username="bridge", password_env="FW_TEST_NOT_SET_ANYWHERE"), None, None, None)
    with pytest.raises(ConfigError, match=r"mqtt\.password_env: the environment variable FW_TEST_NOT_SET_ANYWHERE"):
        options.password()


def test_acks_go_out_in_order_and_a_failure_holds_back_the_rest() -> None:
    sent: list[int] = []
    failures: list[BaseException] = []
    acks = InOrderAcks(sent.append, failures.append)
    done = [acks.received(mid) for mid in range(1, 6)]
    done[2](None)
    done[0](None)
    assert sent == [1]
    done[1](RuntimeError("kafka away"))
    done[3](None)
    done[4](None)
    assert sent == [1] and len(failures) == 1 and acks.pending() == 4
    acks.new_connection()
    assert acks.pending() == 0
    late = acks.received(9)
    late(None)
    assert sent == [1, 9]


def test_acks_from_many_threads_keep_the_order() -> None:
    sent: list[int] = []
    acks = InOrderAcks(sent.append)
    done = [acks.received(mid) for mid in range(2000)]
    threads = [threading.Thread(target=lambda part=part: [d(None) for d in reversed(done[part::4])])
               for part in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sent == list(range(2000))
