package twitchcrement;

import java.nio.ByteBuffer;
import java.util.Arrays;
import java.util.HashSet;

import org.apache.spark.ml.feature.HashingTF;
import org.apache.spark.ml.feature.MinHashLSH$;
import org.apache.spark.ml.feature.MinHashLSHModel;
import org.apache.spark.ml.linalg.Vector;
import org.apache.spark.ml.linalg.Vectors;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.api.java.UDF1;
import org.apache.spark.sql.types.DataTypes;

import scala.Tuple2;

/**
 * A normalised text's MinHash signature in one call per row: its shingles (the same as
 * twitchcrement.textsim.shingle_set: character n-grams of the text padded with a space, by code point, and each
 * token prefixed "w:"), their indices from Spark ML's HashingTF (indexOf), and the MinHash values from the fitted
 * MinHashLSHModel (hashFunction). The values are those of model.transform(tf.transform(...)) on the same shingles,
 * without the shingles crossing from Python and without turning each row's sparse vector and its one-value hash
 * vectors into Spark rows and back (bench/reference/stages-before.md). Returns the values as big-endian int32s,
 * 4 bytes each, or null for a text with fewer than minShingles shingles (too short for LSH).
 *
 * <p>The values are the fitted model's: its coefficients (a, b) and MinHashLSH's own formula, min over the term
 * indices i of ((1 + i) * a + b) mod HASH_PRIME. They are computed in a loop over primitive arrays, because
 * MinHashLSHModel.hashFunction walks Scala iterators over boxed longs: it was a third of the detector's JVM time in
 * a drain (bench/reference/profile-jvm.md). The constructor checks the loop against hashFunction itself, and
 * tests/test_detector.py checks the function against model.transform(tf.transform(...)).
 */
public final class MinHashSignature implements UDF1<String, byte[]> {
    private static final long serialVersionUID = 1L;

    private final HashingTF hashingTF;
    private final long[] coefficientA;
    private final long[] coefficientB;
    private final long prime;
    private final double inversePrime;
    private final int shingleSize;
    private final int minShingles;

    private MinHashSignature(int numFeatures, MinHashLSHModel model, int shingleSize, int minShingles) {
        this.hashingTF = new HashingTF().setNumFeatures(numFeatures);
        Tuple2<Object, Object>[] coefficients = model.randCoefficients();
        this.coefficientA = new long[coefficients.length];
        this.coefficientB = new long[coefficients.length];
        for (int j = 0; j < coefficients.length; j++) {
            coefficientA[j] = ((Number) coefficients[j]._1()).longValue();
            coefficientB[j] = ((Number) coefficients[j]._2()).longValue();
        }
        this.prime = MinHashLSH$.MODULE$.HASH_PRIME();
        this.inversePrime = 1.0 / prime;
        this.shingleSize = shingleSize;
        this.minShingles = minShingles;
        // distinct term indices in order, within any feature space (detector.num_features may be as small as 1)
        int[] probe = Arrays.stream(new int[] {0, numFeatures / 3, numFeatures - 1}).distinct().toArray();
        double[] ones = new double[probe.length];
        Arrays.fill(ones, 1.0);
        Vector[] expected = model.hashFunction(Vectors.sparse(numFeatures, probe, ones));
        int[] computed = hashes(probe, probe.length);
        for (int j = 0; j < expected.length; j++) {
            if ((int) expected[j].apply(0) != computed[j]) {
                throw new IllegalStateException("MinHashLSHModel.hashFunction no longer computes what "
                        + "twitchcrement.MinHashSignature does: this Spark ML release hashes differently");
            }
        }
    }

    /**
     * MinHashLSH's value of each hash function over the first `count` (distinct) term indices. The remainder is
     * taken through a double's quotient, not a long division (several times slower): (term * a + b) / prime is
     * below 2^32, so the double's rounding moves the quotient by at most one, which the two checks mend.
     */
    int[] hashes(int[] indices, int count) {
        long[] minimum = new long[coefficientA.length];
        Arrays.fill(minimum, Long.MAX_VALUE);
        for (int k = 0; k < count; k++) {
            long term = 1L + indices[k];
            for (int j = 0; j < minimum.length; j++) {
                long x = term * coefficientA[j] + coefficientB[j];
                long value = x - (long) (x * inversePrime) * prime;
                if (value < 0) {
                    value += prime;
                } else if (value >= prime) {
                    value -= prime;
                }
                if (value < minimum[j]) {
                    minimum[j] = value;
                }
            }
        }
        int[] values = new int[minimum.length];
        for (int j = 0; j < minimum.length; j++) {
            values[j] = (int) minimum[j];
        }
        return values;
    }

    /** Registers the function as `name` in the session: called from Python (jobs/pipeline.py). */
    public static void register(SparkSession spark, String name, int numFeatures, MinHashLSHModel model,
                                int shingleSize, int minShingles) {
        spark.udf().register(name, new MinHashSignature(numFeatures, model, shingleSize, minShingles),
                DataTypes.BinaryType);
    }

    /** The text's distinct shingles, as textsim.shingle_set makes them. */
    HashSet<String> shingles(String normalised) {
        HashSet<String> grams = new HashSet<>();
        if (normalised.isEmpty()) {
            return grams;
        }
        int[] points = (" " + normalised + " ").codePoints().toArray();
        for (int i = 0; i < Math.max(1, points.length - shingleSize + 1); i++) {
            grams.add(new String(points, i, Math.min(shingleSize, points.length - i)));
        }
        for (String token : normalised.split(" ", -1)) {
            grams.add("w:" + token);
        }
        return grams;
    }

    @Override
    public byte[] call(String normalised) {
        if (normalised == null) {
            return null;
        }
        HashSet<String> grams = shingles(normalised);
        if (grams.size() < minShingles || grams.isEmpty()) {
            return null;
        }
        int[] indices = new int[grams.size()];
        int count = 0;
        for (String gram : grams) {
            indices[count++] = hashingTF.indexOf(gram);
        }
        Arrays.sort(indices);
        int distinct = 0;
        for (int i = 0; i < count; i++) {  // HashingTF adds up terms that collide; MinHash only needs the set
            if (distinct == 0 || indices[i] != indices[distinct - 1]) {
                indices[distinct++] = indices[i];
            }
        }
        int[] values = hashes(indices, distinct);
        ByteBuffer signature = ByteBuffer.allocate(4 * values.length);  // big-endian
        for (int value : values) {
            signature.putInt(value);
        }
        return signature.array();
    }
}
