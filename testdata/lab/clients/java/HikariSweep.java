// HikariSweep: HikariCP 2.7 with the PostgreSQL or MariaDB JDBC driver, as an application
// uses a pool: borrow, a first query, return; IDLE seconds later borrow again (Hikari
// validates a connection idle over 500 ms first: isValid(), aliveBypassWindowMs) and query.
// One pool of one connection per idle, all idles at once. One JSON line per idle to --log:
// the local port of the first connection and of the one that answered after the idle (a
// different port: Hikari's validation failed and it opened a new one), the outcome and the
// borrow time. Hikari's own WARN lines go to standard error (slf4j-simple).
//
// Usage: java -cp HikariCP.jar:postgresql.jar:mariadb-java-client.jar:slf4j-api.jar:
//   slf4j-simple.jar:. HikariSweep --jdbc URL --port-query SQL --idles 2,3.5
//   --log FILE --client-name NAME
import com.zaxxer.hikari.HikariConfig;
import com.zaxxer.hikari.HikariDataSource;
import java.io.FileWriter;
import java.io.IOException;
import java.sql.Connection;
import java.sql.ResultSet;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.List;

public class HikariSweep {
    static String jdbc, portQuery, logPath, clientName, user = "postgres";
    static final Object LOCK = new Object();

    static String port(Connection c) throws Exception {
        try (Statement s = c.createStatement(); ResultSet r = s.executeQuery(portQuery)) {
            r.next();
            String v = r.getString(1);
            return v.substring(v.lastIndexOf(':') + 1);
        }
    }

    static String esc(String s) {
        return s.replace("\\", "\\\\").replace("\"", "\\\"").replace("\n", " ");
    }

    static void one(double idle) {
        StringBuilder rec = new StringBuilder();
        rec.append("{\"client\": \"").append(clientName).append("\", \"idle\": ").append(idle);
        HikariConfig cfg = new HikariConfig();
        cfg.setJdbcUrl(jdbc);
        cfg.setUsername(user);
        cfg.setMaximumPoolSize(1);
        cfg.setPoolName(clientName + "-" + idle);
        cfg.setConnectionTimeout(20000);
        cfg.setValidationTimeout(3000);
        try (HikariDataSource ds = new HikariDataSource(cfg)) {
            try (Connection c = ds.getConnection()) {
                rec.append(", \"port\": \"").append(port(c)).append("\"");
            }
            Thread.sleep((long) (idle * 1000));
            long t = System.nanoTime();
            try (Connection c = ds.getConnection()) {
                String p = port(c);
                rec.append(", \"outcome\": \"ok\", \"second_port\": \"").append(p).append("\"");
            } catch (Exception e) {
                rec.append(", \"outcome\": \"error\", \"error\": \"")
                        .append(esc(e.getClass().getName() + ": " + e.getMessage())).append("\"");
            }
            rec.append(String.format(", \"second_s\": %.3f", (System.nanoTime() - t) / 1e9));
        } catch (Exception e) {
            rec.append(", \"outcome\": \"setup_error\", \"error\": \"").append(esc(e.toString())).append("\"");
        }
        rec.append("}\n");
        synchronized (LOCK) {
            try (FileWriter w = new FileWriter(logPath, true)) {
                w.write(rec.toString());
            } catch (IOException e) {
                System.err.println(e);
            }
        }
    }

    public static void main(String[] args) throws Exception {
        String idles = null;
        for (int i = 0; i < args.length; i += 2) {
            switch (args[i]) {
                case "--jdbc": jdbc = args[i + 1]; break;
                case "--port-query": portQuery = args[i + 1]; break;
                case "--idles": idles = args[i + 1]; break;
                case "--log": logPath = args[i + 1]; break;
                case "--client-name": clientName = args[i + 1]; break;
                case "--user": user = args[i + 1]; break;
                default: throw new IllegalArgumentException(args[i]);
            }
        }
        List<Thread> threads = new ArrayList<>();
        for (String s : idles.split(",")) {
            double idle = Double.parseDouble(s);
            Thread t = new Thread(() -> one(idle));
            t.start();
            threads.add(t);
            Thread.sleep(100);
        }
        for (Thread t : threads) t.join(120000);
        System.exit(0);
    }
}
