// Kafka's own Java producer running back-to-back transactions (records on N partitions,
// consumer offsets, commit): what one transaction costs on a broker, without Python.
// It uses transactions v2 (KIP-890 part 2) when the cluster has transaction.version=2
// finalized, v1 otherwise, so switching the feature compares the two protocols:
//
//   CP="$(.venv/bin/python deploy/kafka/kafkactl.py perf-classpath)"
//   java -cp "$CP" bench/probes/TxnRoundTrip.java 127.0.0.1:19092 txprobe 400 12 2
//   java -cp "$CP:.cache/kafka/libs/*" org.apache.kafka.tools.FeatureCommand \
//       --bootstrap-server 127.0.0.1:19092 downgrade --feature transaction.version=1
//
// Arguments: bootstrap, topic (with at least N partitions), transactions, N, and the
// client's retry.backoff.ms (the Java default of 100 turns every CONCURRENT_TRANSACTIONS
// answer into a 100 ms wait). docs/benchmarks.md, thirteenth round, has the results.
import java.util.Arrays;
import java.util.Map;
import java.util.Properties;
import org.apache.kafka.clients.consumer.ConsumerGroupMetadata;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArraySerializer;

public class TxnRoundTrip {
    private static final int WARM_UP = 50;

    @SuppressWarnings("removal") // a group without members: no consumer to ask groupMetadata() of
    public static void main(String[] args) {
        if (args.length != 5) {
            System.err.println("usage: TxnRoundTrip BOOTSTRAP TOPIC TRANSACTIONS PARTITIONS RETRY_BACKOFF_MS");
            System.exit(2);
        }
        String topic = args[1];
        int n = Integer.parseInt(args[2]);
        int partitions = Integer.parseInt(args[3]);
        Properties props = new Properties();
        props.put("bootstrap.servers", args[0]);
        props.put("transactional.id", "txn-round-trip-" + ProcessHandle.current().pid());
        props.put("key.serializer", ByteArraySerializer.class.getName());
        props.put("value.serializer", ByteArraySerializer.class.getName());
        props.put("linger.ms", "1");
        props.put("retry.backoff.ms", args[4]);
        props.put("retry.backoff.max.ms", args[4]);
        long[] took = new long[n];
        byte[] value = new byte[600];
        try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(props)) {
            producer.initTransactions();
            for (int i = 0; i < n + WARM_UP; i++) {
                long start = System.nanoTime();
                producer.beginTransaction();
                for (int p = 0; p < partitions; p++) {
                    producer.send(new ProducerRecord<>(topic, p, null, value));
                }
                producer.sendOffsetsToTransaction(
                        Map.of(new TopicPartition(topic, 0), new OffsetAndMetadata(i)),
                        new ConsumerGroupMetadata("txn-round-trip"));
                producer.commitTransaction();
                if (i >= WARM_UP) {
                    took[i - WARM_UP] = System.nanoTime() - start;
                }
            }
        }
        Arrays.sort(took);
        System.out.printf("%d transactions, %d partitions each: p50 %.2f ms, p90 %.2f ms, mean %.2f ms%n",
                n, partitions, took[n / 2] / 1e6, took[n * 9 / 10] / 1e6,
                Arrays.stream(took).average().orElse(0) / 1e6);
    }
}
