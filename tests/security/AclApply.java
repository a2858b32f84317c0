// Creates Kafka ACLs through the Admin API in one JVM (tests/security/secure_broker.py).
//
// usage: java -cp <kafka libs> AclApply.java <bootstrap> <admin user> <admin password>
// stdin: one ACL per line, tab-separated:
//   principal  resource-type(TOPIC|GROUP|TRANSACTIONAL_ID|CLUSTER)  pattern(LITERAL|PREFIXED)
//   resource-name  operation(READ|WRITE|DESCRIBE|IDEMPOTENT_WRITE|...)
// Every ACL is ALLOW from any host; there is no DENY: what is not listed is refused.
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.util.ArrayList;
import java.util.List;
import java.util.Properties;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.common.acl.AccessControlEntry;
import org.apache.kafka.common.acl.AclBinding;
import org.apache.kafka.common.acl.AclOperation;
import org.apache.kafka.common.acl.AclPermissionType;
import org.apache.kafka.common.resource.PatternType;
import org.apache.kafka.common.resource.ResourcePattern;
import org.apache.kafka.common.resource.ResourceType;

public class AclApply {
  public static void main(String[] args) throws Exception {
    Properties props = new Properties();
    props.put("bootstrap.servers", args[0]);
    props.put("security.protocol", "SASL_PLAINTEXT");
    props.put("sasl.mechanism", "SCRAM-SHA-512");
    props.put(
        "sasl.jaas.config",
        "org.apache.kafka.common.security.scram.ScramLoginModule required username=\""
            + args[1] + "\" password=\"" + args[2] + "\";");
    List<AclBinding> bindings = new ArrayList<>();
    BufferedReader in = new BufferedReader(new InputStreamReader(System.in));
    String line;
    while ((line = in.readLine()) != null) {
      if (line.isBlank()) continue;
      String[] f = line.split("\t");
      bindings.add(
          new AclBinding(
              new ResourcePattern(ResourceType.valueOf(f[1]), f[3], PatternType.valueOf(f[2])),
              new AccessControlEntry(
                  f[0], "*", AclOperation.valueOf(f[4]), AclPermissionType.ALLOW)));
    }
    try (Admin admin = Admin.create(props)) {
      admin.createAcls(bindings).all().get();
    }
    System.out.println("created " + bindings.size() + " ACLs");
  }
}
