package cpwatch.analysis;

import org.apache.lucene.analysis.Analyzer;
import org.elasticsearch.plugin.NamedComponent;
import org.elasticsearch.plugin.analysis.AnalyzerFactory;

/**
 * Registers the analyzer {@code english} with Elasticsearch through the stable plugin API.
 *
 * <p>Only meant for distributions without the analysis-common module (the integ-test-zip of
 * cpwatch's local stack); a full distribution already has its own {@code english}.
 */
@NamedComponent("english")
public final class EnglishAnalyzerFactory implements AnalyzerFactory {

    @Override
    public Analyzer create() {
        return new EnglishTextAnalyzer();
    }
}
