"""Where plant data enters fusewatch: bridges from plant protocols (MQTT, OPC UA, camera snapshots) and file
import into the Kafka input topics (docs/connect-a-plant.md)."""
