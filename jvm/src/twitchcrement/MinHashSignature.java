package twitchcrement;

import java.nio.ByteBuffer;
import java.util.Arrays;
import java.util.HashSet;

import org.apache.spark.ml.feature.HashingTF;
import org.apache.spark.ml.feature.MinHashLSHModel;
import org.apache.spark.ml.linalg.Vector;
import org.apache.spark.ml.linalg.Vectors;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.api.java.UDF1;
import org.apache.spark.sql.types.DataTypes;

/**
 * A normalised text's MinHash signature in one call per row: its shingles (the same as
 * twitchcrement.textsim.shingle_set: character n-grams of the text padded with a space, by code point, and each
 * token prefixed "w:"), their indices from Spark ML's HashingTF (indexOf), and the MinHash values from the fitted
 * MinHashLSHModel (hashFunction). The values are those of model.transform(tf.transform(...)) on the same shingles,
 * without the shingles crossing from Python and without turning each row's sparse vector and its one-value hash
 * vectors into Spark rows and back (bench/reference/stages-before.md). Returns the values as big-endian int32s,
 * 4 bytes each, or null for a text with fewer than minShingles shingles (too short for LSH).
 */
public final class MinHashSignature implements UDF1<String, byte[]> {
    private static final long serialVersionUID = 1L;

    private final HashingTF hashingTF;
    private final MinHashLSHModel model;
    private final int shingleSize;
    private final int minShingles;

    private MinHashSignature(int numFeatures, MinHashLSHModel model, int shingleSize, int minShingles) {
        this.hashingTF = new HashingTF().setNumFeatures(numFeatures);
        this.model = model;
        this.shingleSize = shingleSize;
        this.minShingles = minShingles;
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
        double[] ones = new double[distinct];
        Arrays.fill(ones, 1.0);
        Vector[] hashes = model.hashFunction(
                Vectors.sparse(hashingTF.getNumFeatures(), Arrays.copyOf(indices, distinct), ones));
        ByteBuffer signature = ByteBuffer.allocate(4 * hashes.length);  // big-endian
        for (Vector hash : hashes) {
            signature.putInt((int) hash.apply(0));
        }
        return signature.array();
    }
}
